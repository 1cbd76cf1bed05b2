//! Every conversion between the wire types (`pb`) and the domain, one file per message
//! family. Nothing below `rpc` sees a `pb` type.
//!
//! * `record`: records, drafts and replica metadata (Exchange, Sync).
//! * `consent`: consents, their signatures, usage checkpoints, changelog entries.
//! * `case`: objection cases.
//! * `notice`: notices that travel down the federation.
//! * `census`: platform census reports.
//! * `quarantine`: entries kept refused from a child (Status).
//! * `usage`: usage-log records.

pub mod case;
pub mod census;
pub mod consent;
pub mod notice;
pub mod quarantine;
pub mod record;
pub mod usage;
