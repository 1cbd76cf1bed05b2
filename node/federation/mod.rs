//! Level-by-level upward federation (R-FED-1, R-NODE-5): county -> city -> province.
//!
//! * `uplink`: the child side. Streams this node's changelog to its configured parent
//!   from the parent's cursor, reconnecting with backoff; receives notices.
//! * `service`: the parent side (the `Federation` gRPC service): accepts Sync from
//!   configured children only, checks and applies their entries, keeps their cursors,
//!   sends notices down, keeps the entries it refuses in quarantine; `Status`,
//!   `Notify` and `RetryQuarantine` for operators.
//! * `check`: the parent's re-check of every entry (it never trusts a child).
//!
//! Notices that travel down are `domain::notice`; which child they go to is
//! `config::next_hop`.
//!
//! Pushes at a child never wait for its parent: the uplink reads the durable changelog
//! on its own schedule, so a parent that is down only delays propagation.

pub mod check;
pub mod service;
pub mod uplink;

pub use service::FederationService;
pub use uplink::{Uplink, UplinkState};
