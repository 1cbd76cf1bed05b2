//! Level-by-level upward federation (R-FED-1, R-NODE-5): county -> city -> province.
//!
//! * `uplink`: the child side. Streams this node's changelog to its configured parent
//!   from the parent's cursor, reconnecting with backoff; receives notices.
//! * `service`: the parent side (the `Federation` gRPC service): accepts Sync from
//!   configured children only, checks and applies their entries, keeps their cursors,
//!   sends notices down; `Status` and `Notify` for operators.
//! * `check`: the parent's re-check of every entry (it never trusts a child).
//! * `notice`: notices that travel down (objection, consent withdrawal, correction).
//!
//! Pushes at a child never wait for its parent: the uplink reads the durable changelog
//! on its own schedule, so a parent that is down only delays propagation.

pub mod check;
pub mod notice;
pub mod service;
pub mod uplink;

pub use service::FederationService;
pub use uplink::{Uplink, UplinkState};

use crate::config::Child;
use crate::domain::region::RegionCode;

/// The child through which a notice for `target` travels down from this node: the
/// configured child that is the target or, by its code, contains it.
pub fn next_hop<'a>(children: &'a [Child], target: &RegionCode) -> Option<&'a Child> {
    children.iter().find(|c| c.region == *target).or_else(|| {
        children
            .iter()
            .find(|c| !c.exception && c.region.contains(target))
    })
}
