//! Who is calling: read once from the client certificate's SAN URI
//! `credit://<role>/<region>/<id>` and handed to handlers as a plain value (R-NODE-3).

use std::fmt;

use crate::domain::region::RegionCode;

/// The kinds of party that hold a certificate of the federation's CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A platform node (county, city or province).
    Node,
    /// 信息提供主体: a unit that supplies records (tax bureau, power company ...).
    Provider,
    /// 查询者: an authorised agency that queries with consent.
    Agency,
    /// A person who runs a platform (信用办 staff).
    Operator,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Provider => "provider",
            Role::Agency => "agency",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "node" => Some(Role::Node),
            "provider" => Some(Role::Provider),
            "agency" => Some(Role::Agency),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of an RPC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallerId {
    pub role: Role,
    pub region: RegionCode,
    /// The party's id within its role and region, e.g. `chaoyang-tax`.
    pub id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallerError {
    #[error("identity URI must look like credit://<role>/<region>/<id>, got {0:?}")]
    Malformed(String),
    #[error("unknown role {0:?} (expected node, provider, agency or operator)")]
    UnknownRole(String),
    #[error("bad region in identity URI: {0}")]
    Region(#[from] crate::domain::region::RegionError),
}

impl CallerId {
    pub fn new(role: Role, region: RegionCode, id: impl Into<String>) -> Self {
        CallerId {
            role,
            region,
            id: id.into(),
        }
    }

    /// Parses `credit://<role>/<region>/<id>`. The id is 1 to 64 characters of
    /// ASCII letters, digits, `-`, `_` and `.`.
    pub fn parse_uri(uri: &str) -> Result<CallerId, CallerError> {
        let malformed = || CallerError::Malformed(uri.to_string());
        let rest = uri.strip_prefix("credit://").ok_or_else(malformed)?;
        let mut parts = rest.split('/');
        let (Some(role), Some(region), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let role = Role::parse(role).ok_or_else(|| CallerError::UnknownRole(role.to_string()))?;
        let region = RegionCode::parse(region)?;
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            return Err(malformed());
        }
        Ok(CallerId {
            role,
            region,
            id: id.to_string(),
        })
    }

    pub fn uri(&self) -> String {
        format!("credit://{}/{}/{}", self.role, self.region, self.id)
    }
}

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.role, self.region, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_a_provider() {
        let c = CallerId::parse_uri("credit://provider/211300/chaoyang-tax").unwrap();
        assert_eq!(c.role, Role::Provider);
        assert_eq!(c.region.as_str(), "211300");
        assert_eq!(c.id, "chaoyang-tax");
        assert_eq!(c.uri(), "credit://provider/211300/chaoyang-tax");
    }

    #[test]
    fn refuses_unknown_roles_and_malformed_uris() {
        assert_eq!(
            CallerId::parse_uri("credit://auditor/211300/x"),
            Err(CallerError::UnknownRole("auditor".into()))
        );
        for bad in [
            "spiffe://node/211300/x",
            "credit://node/211300",
            "credit://node/211300/x/y",
            "credit://node/211300/",
            "credit://node/211300/a b",
        ] {
            assert!(
                matches!(CallerId::parse_uri(bad), Err(CallerError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            CallerId::parse_uri("credit://node/2113/x"),
            Err(CallerError::Region(_))
        ));
    }
}
