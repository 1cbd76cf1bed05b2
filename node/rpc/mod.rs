//! L4, the RPC plumbing every service shares: admission (`gate`), refusals and their
//! mapping to `tonic::Status` (`refusal`), the checks of request fields (`input`), the
//! wire<->domain conversions (`convert/`,
//! one file per message family) and the strict codec (`codec`). Services import it;
//! it imports no service.

pub mod codec;
pub mod convert;
pub mod gate;
pub mod input;
pub mod refusal;

use std::sync::Arc;

use crate::config::Config;
use crate::domain::clock::Clock;
use crate::identity::signing::{NodeSigner, SignatureVerifier};
use crate::policy::Validator;
use crate::rpc::gate::Gate;
use crate::store::{Store, UsageLog};

/// What every service takes from the node it serves in, built once by
/// `server::Node::serve` (`Node::context`). Every service holds it whole.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub validator: Arc<Validator>,
    /// Signs consents and checkpoints with this node's certificate key.
    pub signer: Arc<NodeSigner>,
    /// Checks other nodes' signatures against the federation CA.
    pub verifier: Arc<SignatureVerifier>,
    /// Admission to every RPC, and the logging of its refusals.
    pub gate: Gate,
    /// The node's group-commit writer of usage entries.
    pub usage: UsageLog,
    /// The node's clock: every date rule and usage entry reads it (`Config::clock`).
    pub clock: Clock,
}
