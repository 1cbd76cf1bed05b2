//! credit-node: the exchange node every county, city and provincial public-credit-information
//! platform runs (R-NODE-1).
//!
//! # Layout
//!
//! * `region`: GB/T 2260 region codes and their levels.
//! * `record`: the domain model (records, subjects, drafts); no wire or storage types.
//! * `policy`: the rules: catalog of categories, identifier checks (USCC, resident
//!   identity numbers), prohibited personal data, record validation, what a query
//!   releases and the masking of identifiers in released text, and the role-to-RPC
//!   table.
//! * `identity`: mutual TLS. Development PKI, the server's certificate verifier with
//!   CRLs reread while running, the client connector that checks it reaches a node, and
//!   `CallerId`, read once from the client certificate.
//! * `store`: the sled store behind a small interface: current records by subject and
//!   natural key, the changelog of every version (the future outbox), the usage log;
//!   the integrity check run at every start, and `Store::call`, the bounded way request
//!   handlers reach it. Nothing outside sees sled types.
//! * `usage`: usage-log entries (使用记录, R-SEC-3).
//! * `exchange`: the gRPC Exchange service (push, pull-by-subject) and the one place
//!   where library errors become `tonic::Status`.
//! * `federation`: level-by-level upward sync (uplink, the parent's Sync service, the
//!   re-check of every entry), notices down, status.
//! * `config`: the node's TOML configuration, checked at start.
//! * `server`: assembles a node: store, services, TLS, health and reflection;
//!   `Node::open(config)` then `Node::serve(listener, shutdown)`; `server::start` for
//!   in-process nodes.
//! * `devnet`: a development federation in one folder (CA, identities, node configs)
//!   for the demo, benchmarks and integration tests.
//! * `cli`: the `credit-node` commands (serve, pki, push, pull, store check, demo, bench).
//! * `fuzzing`: the bodies of the fuzz targets in `fuzz/` and their seed corpora, also
//!   run by `tests/fuzz_corpus.rs`.
#![forbid(unsafe_code)]

pub mod access;
pub mod census;
pub mod cli;
pub mod config;
pub mod consent;
pub mod devnet;
pub mod domain;
pub mod exchange;
pub mod federation;
pub mod fuzzing;
pub mod identity;
pub mod objection;
pub mod policy;
pub mod server;
pub mod store;

/// Generated wire types and gRPC stubs for `proto/credit/v1`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("credit.v1");

    /// Encoded descriptor set of the wire contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/credit_descriptor.bin"));
}
