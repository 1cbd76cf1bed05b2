//! 异议处理: a subject's objection to a record (R-OBJ-1..3), credit repair and the
//! retention purge (R-SEC-2).
//!
//! # The case and who owns it
//!
//! An operator files an objection at any node that holds the record. The node that
//! first accepted the record (its origin) owns the case; only it changes the record.
//! * At the filing node the case is kept at once (version 0) and the record is withheld
//!   there from that moment (`Store::objection_open`).
//! * When the filing node is not the origin, an objection notice carries the case down,
//!   hop by hop; each node on the way keeps a copy and withholds the record too.
//! * The origin takes the case (version 1) and suspends the record: a new version with
//!   status suspended. Both travel up in its changelog, so every copy above is
//!   suspended within one sync round, and each later step of the case follows the same
//!   way up.
//! * The record is released again only by the outcome: corrected (a new version from
//!   the origin), deleted (a tombstone with the reason, R-OBJ-3) or upheld (the
//!   suspension lifted).
//!
//! # Deadlines (R-OBJ-2), in working days of the node's calendar
//! * the platform checks within 3 of receipt;
//! * the platform's own error: corrected at once, the applicant told within 2 of the
//!   check;
//! * otherwise the provider is notified at the check and replies within 10, and the
//!   applicant is told within 2 of the reply.
//!
//! The resolution is the written answer to the applicant: its date is when they were
//! told.

pub mod origin;
pub mod purge;
pub mod repair;
pub mod service;
pub mod steps;
