//! L0, the domain: plain types and the pure rules over them. Nothing here knows the wire
//! (`pb`, tonic), the store (sled) or the configuration; every other layer builds on it.
//! The stored byte format of every persisted type is fixed by its serde derives here.

pub mod calendar;
pub mod caller;
pub mod case;
pub mod census;
pub mod clock;
pub mod consent;
pub mod ids;
pub mod notice;
pub mod record;
pub mod region;
pub mod signature;
pub mod usage;
