//! Level-by-level upward federation (R-FED-1, R-NODE-5): county -> city -> province.
//!
//! * `uplink`: the child side. Streams this node's changelog to its configured parent
//!   from the parent's cursor, reconnecting with backoff.
//! * `notices`: the child side of notices: keeps, passes on and acknowledges those that
//!   come down the uplink's stream.
//! * `service`: the parent side (the `Federation` gRPC service), delegating to:
//!   * `sync`: accepts Sync from configured children only, checks and applies their
//!     entries, keeps their cursors, quarantines what it refuses; RetryQuarantine;
//!   * `status`: `Status` for operators;
//!   * `notify`: `Notify` for operators, and the notices sent down each child's stream.
//! * `check`: the parent's re-check of every entry (it never trusts a child).
//!
//! Notices that travel down are `domain::notice`; which child they go to is
//! `config::next_hop`.
//!
//! Pushes at a child never wait for its parent: the uplink reads the durable changelog
//! on its own schedule, so a parent that is down only delays propagation.

pub mod check;
mod notices;
mod notify;
pub mod service;
mod status;
pub(crate) mod sync;
pub mod uplink;

pub use service::FederationService;
pub use uplink::{Uplink, UplinkState};
