//! Mutual TLS and who is calling (R-NODE-3).
//!
//! * `caller`: `CallerId` and `Role`, parsed from the SAN URI `credit://<role>/<region>/<id>`.

pub mod caller;

pub use caller::{CallerError, CallerId, Role};
