//! credit-node: the exchange node every county, city and provincial public-credit-information
//! platform runs (R-NODE-1).
//!
//! # Layout
//!
//! Layers, bottom to top; a module imports only from its own layer or lower
//! (`tests/layers.rs` checks it).
//!
//! * `domain` (L0): plain types and pure rules: region codes, records and their ids,
//!   the clock, the caller, consents, objection cases and the working-day calendar,
//!   notices, census figures, usage entries, signature data. No wire, store or config.
//! * `identity` (L1): mutual TLS. Development PKI, the server's certificate verifier
//!   with CRLs reread while running, the client connector that checks it reaches a
//!   node, reading the caller from the client certificate, and signing with the node's
//!   key (consents, checkpoints).
//! * `policy` (L1): the rules: catalog of categories, identifier checks, prohibited
//!   personal data, record validation, what a query releases and the masking of
//!   identifiers in released text, and the role-to-RPC table.
//! * `store` (L2): the store, every write's decisions above one storage seam
//!   (`backend::Backend`; sled the production engine, an in-memory one the conformance
//!   suite's reference): current records by subject and
//!   natural key, the changelog of every version, the usage log, consents, checkpoints,
//!   cases, notices, census figures, the quarantine of entries refused from children;
//!   the integrity check run at every start, and `Store::call`, the bounded way request
//!   handlers reach it.
//! * `config` (L3): the node's TOML configuration, checked at start.
//! * `rpc` (L4): what the services share: the gate (authentication, role table,
//!   logging of refusals), refusals mapped to `tonic::Status`, the request-field checks,
//!   the wire<->domain conversions, the strict codec, and the `Context` every service is
//!   built from.
//! * `pb` (L4): the generated wire types and gRPC stubs.
//! * `exchange` (L5): the Exchange service (push, pull-by-subject).
//! * `federation` (L5): level-by-level upward sync (uplink, the parent's Sync service,
//!   the re-check of every entry), notices down, status, the quarantine retry.
//! * `access` (L5): the Consents, Query and Audit services.
//! * `objection` (L5): the Objections service: the case's steps, what only a record's
//!   origin does, credit repair and the retention purge.
//! * `census` (L5): the Census service and this platform's own report.
//! * `server` (L6): assembles a node (store, services, TLS, health and reflection):
//!   `Node::open(config)` then `Node::serve(listener, shutdown)`; `server::start` for
//!   in-process nodes.
//! * `devnet` (L7): a development federation in one folder (CA, identities, node
//!   configs) for the demo, benchmarks and integration tests.
//! * `cli` (L7): the `credit-node` commands (serve, store check, pki, push, pull, status,
//!   quarantine, consent, query, audit, census, report, objection, repair, purge, demo,
//!   bench).
//! * `fuzzing` (L7): the bodies of the fuzz targets in `fuzz/` and their seed corpora,
//!   also run by `tests/fuzz_corpus.rs`.
#![forbid(unsafe_code)]

pub mod access;
pub mod census;
pub mod cli;
pub mod config;
pub mod devnet;
pub mod domain;
pub mod exchange;
pub mod federation;
pub mod fuzzing;
pub mod identity;
pub mod objection;
pub mod policy;
pub mod rpc;
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
