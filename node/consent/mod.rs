//! Consents on the wire.

pub mod wire;
