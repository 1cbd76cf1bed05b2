//! Signature data as consents and checkpoints carry it. Making and checking one is
//! `identity::signing`'s; the domain only keeps the bytes.

use serde::{Deserialize, Serialize};

/// A signature and the certificate whose key made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub signature: Vec<u8>,
    /// DER of the signer's certificate.
    pub cert: Vec<u8>,
}
