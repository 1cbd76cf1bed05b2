//! L4, the RPC plumbing every service shares: admission (`gate`), refusals and their
//! mapping to `tonic::Status` (`refusal`), the wire<->domain conversions (`convert/`,
//! one file per message family) and the strict codec (`codec`). Services import it;
//! it imports no service.

pub mod codec;
pub mod convert;
pub mod gate;
pub mod refusal;

use std::sync::Arc;

use crate::config::Config;
use crate::identity::signing::{NodeSigner, SignatureVerifier};
use crate::policy::Validator;
use crate::store::Store;

/// What a service takes from the node it serves in: its configuration, store, record
/// validator and signature keys. `server::Node::context` hands it out.
#[derive(Clone)]
pub struct Context {
    pub config: Config,
    pub store: Store,
    pub validator: Arc<Validator>,
    /// Signs consents and checkpoints with this node's certificate key.
    pub signer: Arc<NodeSigner>,
    /// Checks other nodes' signatures against the federation CA.
    pub verifier: Arc<SignatureVerifier>,
}
