//! The role-to-RPC table: which kind of caller may call which RPC (R-NODE-3).
//!
//! One table, so a reader sees every permission in one place. Finer limits that need
//! the node's configuration (a provider pushes only its registered categories) are
//! checked by the service with `category_allowed`.

use crate::domain::caller::{CallerId, Role};
use crate::domain::region::RegionCode;

/// The RPCs a caller can be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    Push,
    PullBySubject,
    /// Upward sync from a child node (R-FED-1, R-NODE-5).
    Sync,
    /// A node's status (operators).
    Status,
    /// Queue a notice for a node below (operators).
    Notify,
    /// Retry the entries refused from children and kept in quarantine (operators).
    RetryQuarantine,
    /// Record, withdraw, read or list consents (operators, R-REL-4).
    Consents,
    /// A subject's records on a legal basis; which roles may use which basis is checked
    /// by the query service (R-REL-2..5).
    Query,
    /// Verify the usage log (operators).
    AuditVerify,
    /// A subject's usage history (operators; nodes forwarding for one below).
    History,
    /// The checkpoints of a node below kept here (operators; that node itself).
    Checkpoints,
    /// The census and the monthly report (operators).
    Census,
    /// File, check, resolve and list objections; credit repair; the purge (operators of
    /// this node, R-OBJ-1..3, R-SEC-2).
    Objections,
    /// A provider's reply to an objection, and its list of them (R-OBJ-2).
    ObjectionReply,
}

/// A refusal by the role table: the rule it cites and a message for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({rule})")]
pub struct Denial {
    pub rule: &'static str,
    pub message: String,
}

impl Denial {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Denial {
            rule,
            message: message.into(),
        }
    }
}

/// Whether `caller` may call `rpc` on the node of region `node`.
///
/// | role     | Push                          | PullBySubject              |
/// |----------|-------------------------------|----------------------------|
/// | provider | yes, registered here (R-DATA-6) | no (R-REL-4)             |
/// | operator | no (R-DATA-4)                 | this node's region only    |
/// | node     | no: nodes sync upward (R-NODE-5) | its parent and configured children only (`tree_reader`) |
/// | agency   | no (R-REL-4)                  | no: query with consent (R-REL-4) |
///
/// Sync: nodes only (R-NODE-5). Status, Notify, RetryQuarantine, Consents and
/// AuditVerify: operators of this node's region only. Query: every role; the basis
/// decides what each may see.
/// History and Checkpoints: operators of this region, and nodes (the service checks a
/// node is a configured child).
pub fn check(caller: &CallerId, rpc: Rpc, node: &RegionCode) -> Result<(), Denial> {
    match (caller.role, rpc) {
        (Role::Provider, Rpc::Push) => Ok(()),
        (Role::Provider, Rpc::PullBySubject) => Err(Denial::new(
            "R-REL-4",
            "a provider may push records but not pull another subject's records; \
             shared data reaches providers through the exchange for their statutory duty",
        )),
        (Role::Operator, Rpc::Push) => Err(Denial::new(
            "R-DATA-4",
            "records are supplied by registered providers; an operator may not push them",
        )),
        (Role::Operator, Rpc::PullBySubject) if caller.region == *node => Ok(()),
        (Role::Operator, Rpc::PullBySubject) => Err(Denial::new(
            "R-NODE-3",
            format!(
                "an operator of region {} may not pull from the node of region {node}",
                caller.region
            ),
        )),
        (Role::Node, Rpc::Push) => Err(Denial::new(
            "R-NODE-5",
            "nodes send data upward through the uplink, not through Push",
        )),
        // Which nodes may pull here (the parent and configured children, by certificate
        // region) is checked against the config by the service with `tree_reader`.
        (Role::Node, Rpc::PullBySubject) => Ok(()),
        (Role::Agency, Rpc::Push) => Err(Denial::new("R-REL-4", "an agency may not push records")),
        (Role::Agency, Rpc::PullBySubject) => Err(Denial::new(
            "R-REL-4",
            "an agency reads another subject's records only through a consent-gated query",
        )),
        // Which nodes may sync here (configured children, by certificate region) is
        // checked against the config by the service.
        (Role::Node, Rpc::Sync) => Ok(()),
        (_, Rpc::Sync) => Err(Denial::new("R-NODE-5", "only a child node syncs upward")),
        (
            Role::Operator,
            Rpc::Status | Rpc::Notify | Rpc::RetryQuarantine | Rpc::AuditVerify | Rpc::Census,
        ) if caller.region == *node => Ok(()),
        (_, Rpc::Status | Rpc::Notify | Rpc::RetryQuarantine | Rpc::AuditVerify | Rpc::Census) => {
            Err(Denial::new(
                "R-NODE-3",
                format!("only an operator of region {node} administers this node"),
            ))
        }
        (Role::Operator, Rpc::Consents) if caller.region == *node => Ok(()),
        (_, Rpc::Consents) => Err(Denial::new(
            "R-REL-4",
            format!(
                "consents are recorded from the subject's signed paper by an operator of \
                 region {node}"
            ),
        )),
        (_, Rpc::Query) => Ok(()),
        (Role::Operator, Rpc::Objections) if caller.region == *node => Ok(()),
        (_, Rpc::Objections) => Err(Denial::new(
            "R-OBJ-1",
            format!("objections are filed and handled by an operator of region {node}"),
        )),
        // Which records' cases a provider may answer is checked by the service.
        (Role::Provider | Role::Operator, Rpc::ObjectionReply) if caller.region == *node => Ok(()),
        (_, Rpc::ObjectionReply) => Err(Denial::new(
            "R-OBJ-2",
            format!("a provider of region {node} answers objections about its own records"),
        )),
        (Role::Operator, Rpc::History | Rpc::Checkpoints) if caller.region == *node => Ok(()),
        (Role::Node, Rpc::History | Rpc::Checkpoints) => Ok(()),
        (_, Rpc::History | Rpc::Checkpoints) => Err(Denial::new(
            "R-SEC-3",
            format!("usage history is read by an operator of region {node}, for the subject"),
        )),
    }
}

/// This node's neighbours in the federation, from its config: the only nodes it
/// answers as nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub parent: Option<RegionCode>,
    pub children: Vec<RegionCode>,
}

impl Tree {
    /// Whether `region` is this node's configured parent or one of its children.
    pub fn neighbour(&self, region: &RegionCode) -> bool {
        self.parent.as_ref() == Some(region) || self.children.contains(region)
    }
}

/// Whether a caller with role `node` may read unmasked records here: only this node's
/// configured parent or one of its configured children, by certificate region (R-REL-4,
/// R-NODE-3). Any other node under the CA is refused: holding a node certificate does
/// not make a node a party to another region's data.
pub fn tree_reader(caller: &CallerId, tree: &Tree, node: &RegionCode) -> Result<(), Denial> {
    if caller.role != Role::Node || tree.neighbour(&caller.region) {
        return Ok(());
    }
    Err(Denial::new(
        "R-REL-4",
        format!(
            "node {} is neither the parent nor a configured child of node {node}; only \
             the federation tree reads records between nodes (R-NODE-3)",
            caller.region
        ),
    ))
}

/// Whether a registered provider may push records of `category`: only the categories
/// its config entry lists (R-DATA-2).
pub fn category_allowed(allowed: &[String], category: &str) -> Result<(), Denial> {
    if allowed.iter().any(|c| c == category) {
        Ok(())
    } else {
        Err(Denial::new(
            "R-DATA-2",
            format!("this provider is not registered for category \"{category}\""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, region: &str) -> CallerId {
        CallerId::new(role, RegionCode::parse(region).unwrap(), "x")
    }

    #[test]
    fn the_table() {
        let here = RegionCode::parse("211382").unwrap();
        let cases = [
            (Role::Provider, Rpc::Push, "211382", true),
            (Role::Provider, Rpc::PullBySubject, "211382", false),
            (Role::Operator, Rpc::Push, "211382", false),
            (Role::Operator, Rpc::PullBySubject, "211382", true),
            (Role::Operator, Rpc::PullBySubject, "211300", false),
            (Role::Node, Rpc::Push, "211300", false),
            (Role::Node, Rpc::PullBySubject, "211300", true),
            (Role::Agency, Rpc::Push, "211382", false),
            (Role::Agency, Rpc::PullBySubject, "211382", false),
            (Role::Node, Rpc::Sync, "211382", true),
            (Role::Provider, Rpc::Sync, "211382", false),
            (Role::Operator, Rpc::Sync, "211382", false),
            (Role::Operator, Rpc::Status, "211382", true),
            (Role::Operator, Rpc::Notify, "211300", false),
            (Role::Node, Rpc::Status, "211300", false),
            (Role::Agency, Rpc::Notify, "211382", false),
            (Role::Operator, Rpc::Objections, "211382", true),
            (Role::Operator, Rpc::Objections, "211300", false),
            (Role::Provider, Rpc::Objections, "211382", false),
            (Role::Agency, Rpc::Objections, "211382", false),
            (Role::Provider, Rpc::ObjectionReply, "211382", true),
            (Role::Provider, Rpc::ObjectionReply, "211300", false),
            (Role::Agency, Rpc::ObjectionReply, "211382", false),
        ];
        for (role, rpc, region, ok) in cases {
            assert_eq!(
                check(&caller(role, region), rpc, &here).is_ok(),
                ok,
                "{role} {rpc:?} {region}"
            );
        }
    }

    #[test]
    fn only_the_parent_and_children_read_as_nodes_r_rel_4() {
        let here = RegionCode::parse("211300").unwrap();
        let tree = Tree {
            parent: Some(RegionCode::parse("210000").unwrap()),
            children: vec![RegionCode::parse("211382").unwrap()],
        };
        for (role, region, ok) in [
            (Role::Node, "210000", true),
            (Role::Node, "211382", true),
            (Role::Node, "220000", false),
            (Role::Node, "211300", false),
            (Role::Node, "211381", false),
            (Role::Operator, "211300", true),
        ] {
            let result = tree_reader(&caller(role, region), &tree, &here);
            assert_eq!(result.is_ok(), ok, "{role} {region}");
            if let Err(d) = result {
                assert_eq!(d.rule, "R-REL-4");
            }
        }
    }

    #[test]
    fn categories_are_limited_to_the_registered_list() {
        let allowed = vec!["tax".to_string()];
        assert!(category_allowed(&allowed, "tax").is_ok());
        assert_eq!(
            category_allowed(&allowed, "power").unwrap_err().rule,
            "R-DATA-2"
        );
    }
}
