//! Mutual TLS and who is calling (R-NODE-3): every connection is mutual TLS 1.3, and the
//! client certificate alone says who the caller is.
//!
//! The caller is a plain `domain::caller::CallerId`, read from the SAN URI
//! `credit://<role>/<region>/<id>` of the client certificate.
//!
//! * `pki`: the development CA (rcgen): issue certificates that carry that URI, revoke
//!   them through the CRL. Backs `credit-node pki init|issue|revoke`; also works in memory.
//! * `tls`: the server side. `ServerTls` (rustls config with the CA and CRL, reread while
//!   running), `incoming` (the TLS accept loop tonic serves from), and `authenticate` /
//!   `Authenticator`, which turn the peer certificate into a `CallerId` on every RPC.
//! * `conn`: per-address caps on handshakes and connections, the count of calls open on
//!   a connection (for the idle timeout), and the throttle on connection warnings.
//! * `signing`: signatures a node makes with its certificate's key (consents,
//!   checkpoints) and their check against the federation CA.
//! * `signed`: signing and checking the domain's signed values (consents, withdrawals,
//!   checkpoints) with those keys.
//! * `client`: the client side. `connect` / `lazy` dial a node with the party's
//!   certificate and refuse servers that are not a node (of the expected region).

pub mod client;
pub mod conn;
pub mod pki;
pub mod signed;
pub mod signing;
pub mod tls;

#[cfg(test)]
mod wire_tests;

pub use client::{ClientError, ClientIdentity, ExpectedServer, connect, lazy};
pub use pki::{DevCa, IssuedCert, PkiError, RevokeOutcome};
pub use tls::{Authenticator, ServerTls, TlsError, TlsFiles, authenticate, caller, incoming};
