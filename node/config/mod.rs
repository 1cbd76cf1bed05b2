//! The node's configuration: one TOML file, checked at start. A bad config is refused
//! with the key and the reason; nothing starts half-configured.
//!
//! Relative paths in the file are read relative to the file's own folder, so a
//! deployment folder can be moved as a whole.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use std::sync::Arc;

use crate::domain::calendar::Calendar;
use crate::domain::clock::Clock;
use crate::domain::region::RegionCode;
use crate::identity::tls::{ConnectionLimits, TlsFiles};
use crate::policy::Catalog;
use crate::policy::publication::Publication;
use crate::store::StoreOptions;

/// A refused configuration: the key (as a TOML path) and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config key `{key}`: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// This platform's region code; its level follows from it (R-NODE-1).
    pub region: RegionCode,
    /// The platform's name, e.g. 凌源市公共信用信息平台.
    pub name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsFiles,
    /// How often the CRL file is checked for changes.
    pub crl_reload: Duration,
    /// An operator's catalog file that adds to or replaces built-in categories.
    pub catalog: Option<PathBuf>,
    /// Known legacy codes that pass without the check-character test (pilot-region
    /// USCCs issued before GB 32100, for example).
    pub legacy_codes: Vec<String>,
    pub providers: Vec<Provider>,
    pub store: StoreOptions,
    /// The platform one level up, when there is one (the province's is the national
    /// platform, outside this federation).
    pub parent: Option<Parent>,
    /// The platforms one level down whose full data this node receives (R-FED-1).
    pub children: Vec<Child>,
    /// How often the node signs a checkpoint of its usage log (when it grew) and sends
    /// it up (R-SEC-3). `[audit] checkpoint_secs`, default 60.
    pub checkpoint_every: Duration,
    /// Working days for objection deadlines (R-OBJ-2): `calendar = "file"`, else the
    /// built-in State Council schedule.
    pub calendar: Arc<Calendar>,
    /// Publication periods: `publication = "file"`, else the built-in table.
    pub publication: Arc<Publication>,
    /// How often the node purges its own adverse records about persons past their five
    /// years (R-SEC-2). `[retention] purge_secs`, default 3600.
    pub purge_every: Duration,
    /// The clock for dates (retention, publication, deadlines, validation, acceptance
    /// times); the system clock unless a test moves it or `[clock] today = "YYYY-MM-DD"`
    /// starts it at noon of that day (a rehearsal; the node warns at start).
    pub clock: Clock,
    /// The longest a recorded consent may last, from its first day to its last, in
    /// years (R-REL-4). `[consent] max_term_years`, default 5.
    pub consent_max_term_years: u32,
    /// Bounds on connections: `[connections] handshake_secs, preface_secs, idle_secs,
    /// max_handshakes, max_connections, max_handshakes_per_ip, max_connections_per_ip,
    /// max_streams`.
    pub connections: ConnectionLimits,
}

/// The default of `[consent] max_term_years`.
pub const CONSENT_MAX_TERM_YEARS: u32 = 5;

/// 上级平台: where this node's uplink sends its changelog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub region: RegionCode,
    /// e.g. `https://chaoyang.credit.example:7443`.
    pub endpoint: String,
}

/// A node that syncs into this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub region: RegionCode,
    /// Set for a child whose code does not lie inside this node's by its digits
    /// (province-administered counties, cities without counties ...).
    pub exception: bool,
}

/// 信息提供主体: a unit registered to push records to this node (R-DATA-6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// The id in the provider's certificate, `credit://provider/<region>/<id>`.
    pub id: String,
    pub name: String,
    /// The catalog categories it may push.
    pub categories: Vec<String>,
    /// The unit's Unified Social Credit Code, when registered.
    pub uscc: Option<String>,
    /// A government body (tax bureau, market regulator ...): it may receive shared
    /// information for its statutory duty (R-REL-5). Utilities are not.
    pub government: bool,
    /// Who answers for its reporting duty (R-DATA-6): the responsible leader, the
    /// department head and the liaison, each when given.
    pub contacts: Vec<Contact>,
}

/// A person a provider names for its reporting duty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// `leader`, `department_head` or `liaison`.
    pub role: &'static str,
    pub name: String,
    pub title: String,
    /// An 11-digit mainland mobile number.
    pub mobile: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    region: String,
    name: String,
    listen: String,
    data_dir: PathBuf,
    tls: RawTls,
    catalog: Option<PathBuf>,
    #[serde(default)]
    legacy_codes: Vec<String>,
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    store: RawStore,
    parent: Option<RawParent>,
    #[serde(default)]
    children: Vec<RawChild>,
    #[serde(default)]
    audit: RawAudit,
    calendar: Option<PathBuf>,
    publication: Option<PathBuf>,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    clock: RawClock,
    #[serde(default)]
    consent: RawConsent,
    #[serde(default)]
    connections: RawConnections,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClock {
    today: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    max_term_years: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConnections {
    handshake_secs: Option<u64>,
    preface_secs: Option<u64>,
    idle_secs: Option<u64>,
    max_handshakes: Option<usize>,
    max_connections: Option<usize>,
    max_handshakes_per_ip: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_streams: Option<u32>,
}

impl RawConnections {
    fn check(&self) -> Result<ConnectionLimits, ConfigError> {
        let d = ConnectionLimits::default();
        let secs = |key: &str, v: Option<u64>, default: Duration| match v {
            None => Ok(default),
            Some(n) if (1..=300).contains(&n) => Ok(Duration::from_secs(n)),
            Some(_) => Err(err(key, "must be between 1 and 300 seconds")),
        };
        let count = |key: &str, v: Option<usize>, default: usize, max: usize| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(_) => Err(err(key, format!("must be between 1 and {max}"))),
        };
        let limits = ConnectionLimits {
            handshake_timeout: secs(
                "connections.handshake_secs",
                self.handshake_secs,
                d.handshake_timeout,
            )?,
            preface_timeout: secs(
                "connections.preface_secs",
                self.preface_secs,
                d.preface_timeout,
            )?,
            idle_timeout: match self.idle_secs {
                None => d.idle_timeout,
                Some(n) if (1..=86_400).contains(&n) => Duration::from_secs(n),
                Some(_) => {
                    return Err(err(
                        "connections.idle_secs",
                        "must be between 1 and 86400 seconds",
                    ));
                }
            },
            max_handshakes: count(
                "connections.max_handshakes",
                self.max_handshakes,
                d.max_handshakes,
                65_536,
            )?,
            max_connections: count(
                "connections.max_connections",
                self.max_connections,
                d.max_connections,
                1_000_000,
            )?,
            max_handshakes_per_ip: count(
                "connections.max_handshakes_per_ip",
                self.max_handshakes_per_ip,
                d.max_handshakes_per_ip,
                65_536,
            )?,
            max_connections_per_ip: count(
                "connections.max_connections_per_ip",
                self.max_connections_per_ip,
                d.max_connections_per_ip,
                1_000_000,
            )?,
            max_streams: count(
                "connections.max_streams",
                self.max_streams.map(|n| n as usize),
                d.max_streams as usize,
                10_000,
            )? as u32,
        };
        if limits.max_handshakes > limits.max_connections {
            return Err(err(
                "connections.max_handshakes",
                "must not exceed connections.max_connections",
            ));
        }
        // Per-address caps above the global ones would be no cap; an address's
        // handshakes count among its connections.
        let limits = ConnectionLimits {
            max_handshakes_per_ip: limits.max_handshakes_per_ip.min(limits.max_handshakes),
            max_connections_per_ip: limits.max_connections_per_ip.min(limits.max_connections),
            ..limits
        };
        if limits.max_handshakes_per_ip > limits.max_connections_per_ip {
            return Err(err(
                "connections.max_handshakes_per_ip",
                "must not exceed connections.max_connections_per_ip",
            ));
        }
        Ok(limits)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    purge_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    checkpoint_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParent {
    region: String,
    endpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    region: String,
    #[serde(default)]
    exception: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    crl: Option<PathBuf>,
    crl_reload_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    name: String,
    categories: Vec<String>,
    uscc: Option<String>,
    #[serde(default)]
    government: bool,
    leader: Option<RawContact>,
    department_head: Option<RawContact>,
    liaison: Option<RawContact>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    name: String,
    #[serde(default)]
    title: String,
    mobile: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    cache_mb: Option<u64>,
    call_timeout_secs: Option<u64>,
    open_timeout_secs: Option<u64>,
}

impl Config {
    /// The federation tree around this node: its configured parent and children.
    pub fn tree(&self) -> crate::policy::authz::Tree {
        crate::policy::authz::Tree {
            parent: self.parent.as_ref().map(|p| p.region),
            children: self.children.iter().map(|c| c.region).collect(),
        }
    }

    /// Reads and checks a config file, including that the catalog loads and every
    /// provider's categories exist in it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("(file)", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base)
    }

    /// Parses and checks config text; relative paths are taken relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let document = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e, None))?;
        let raw: RawConfig = serde_path_to_error::deserialize(document)
            .map_err(|e| syntax_error(text, e.inner(), Some(e.path())))?;
        let region =
            RegionCode::parse(raw.region.trim()).map_err(|e| err("region", e.to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(err("name", "must not be empty"));
        }
        let listen: SocketAddr = raw.listen.parse().map_err(|e| {
            err(
                "listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:7443: {e}",
                    raw.listen
                ),
            )
        })?;
        if raw.data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "must not be empty"));
        }
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let tls = TlsFiles {
            ca: resolve(&raw.tls.ca),
            cert: resolve(&raw.tls.cert),
            key: resolve(&raw.tls.key),
            crl: raw.tls.crl.as_deref().map(resolve),
        };
        for (key, path) in [
            ("tls.ca", Some(&tls.ca)),
            ("tls.cert", Some(&tls.cert)),
            ("tls.key", Some(&tls.key)),
            ("tls.crl", tls.crl.as_ref()),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(err(key, format!("no file at {}", path.display())));
            }
        }
        let crl_reload = Duration::from_secs(raw.tls.crl_reload_secs.unwrap_or(5));
        if crl_reload.is_zero() {
            return Err(err("tls.crl_reload_secs", "must be at least 1"));
        }
        let catalog_path = raw.catalog.as_deref().map(resolve);
        let catalog =
            Catalog::load(catalog_path.as_deref()).map_err(|e| err("catalog", e.to_string()))?;

        let mut seen = HashSet::new();
        let mut providers = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.into_iter().enumerate() {
            let key = |field: &str| format!("providers[{i}].{field}");
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !id_ok {
                return Err(err(
                    key("id"),
                    format!("{:?} must be 1-64 of A-Z a-z 0-9 - _ .", p.id),
                ));
            }
            if !seen.insert(p.id.clone()) {
                return Err(err(
                    key("id"),
                    format!("provider {:?} is listed twice", p.id),
                ));
            }
            if p.name.trim().is_empty() {
                return Err(err(key("name"), "must not be empty"));
            }
            if p.categories.is_empty() {
                return Err(err(key("categories"), "list at least one catalog category"));
            }
            for c in &p.categories {
                if catalog.get(c).is_none() {
                    return Err(err(
                        key("categories"),
                        format!("unknown catalog category {c:?}"),
                    ));
                }
            }
            let uscc = match p.uscc {
                Some(code) => {
                    let code = crate::policy::identifier::normalise_id(&code);
                    crate::policy::identifier::check_uscc(&code)
                        .map_err(|e| err(key("uscc"), e.to_string()))?;
                    Some(code)
                }
                None => None,
            };
            let mut contacts = Vec::new();
            for (role, c) in [
                ("leader", p.leader),
                ("department_head", p.department_head),
                ("liaison", p.liaison),
            ] {
                let Some(c) = c else { continue };
                if c.name.trim().is_empty() {
                    return Err(err(key(&format!("{role}.name")), "must not be empty"));
                }
                let mobile = c.mobile.trim().to_string();
                if !(mobile.len() == 11
                    && mobile.starts_with('1')
                    && mobile.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(err(
                        key(&format!("{role}.mobile")),
                        format!("{mobile:?} is not an 11-digit mobile number"),
                    ));
                }
                contacts.push(Contact {
                    role,
                    name: c.name.trim().to_string(),
                    title: c.title.trim().to_string(),
                    mobile,
                });
            }
            providers.push(Provider {
                contacts,
                id: p.id,
                name: p.name,
                categories: p.categories,
                uscc,
                government: p.government,
            });
        }
        // Legacy codes become part of store keys and must be pullable: the same shape as
        // any subject identifier.
        let mut legacy_codes = Vec::with_capacity(raw.legacy_codes.len());
        for (i, code) in raw.legacy_codes.iter().enumerate() {
            let code = crate::policy::identifier::normalise_id(code);
            if !crate::domain::record::has_id_shape(&code) {
                return Err(err(
                    format!("legacy_codes[{i}]"),
                    format!("{code:?} must be 1-64 letters and digits"),
                ));
            }
            legacy_codes.push(code);
        }
        let parent = match raw.parent {
            None => None,
            Some(p) => {
                let parent = RegionCode::parse(p.region.trim())
                    .map_err(|e| err("parent.region", e.to_string()))?;
                if parent == region {
                    return Err(err("parent.region", "a node cannot be its own parent"));
                }
                let endpoint = p.endpoint.trim().to_string();
                if endpoint.is_empty() {
                    return Err(err(
                        "parent.endpoint",
                        "must name the parent node, e.g. https://host:7443",
                    ));
                }
                Some(Parent {
                    region: parent,
                    endpoint,
                })
            }
        };
        // Parents come from config, never from truncating codes; a child outside this
        // region by its digits is refused unless the operator marks the exception.
        let mut children: Vec<Child> = Vec::with_capacity(raw.children.len());
        for (i, c) in raw.children.iter().enumerate() {
            let key = format!("children[{i}].region");
            let child = RegionCode::parse(c.region.trim()).map_err(|e| err(&key, e.to_string()))?;
            if child == region {
                return Err(err(key, "a node cannot be its own child"));
            }
            if !c.exception && !region.contains(&child) {
                return Err(err(
                    key,
                    format!(
                        "{child} does not lie inside {region}; if it really reports here, set exception = true"
                    ),
                ));
            }
            if children.iter().any(|x| x.region == child) {
                return Err(err(key, format!("{child} is listed twice")));
            }
            if parent.as_ref().is_some_and(|p| p.region == child) {
                return Err(err(key, format!("{child} is this node's parent")));
            }
            children.push(Child {
                region: child,
                exception: c.exception,
            });
        }
        let cache_mb = raw.store.cache_mb.unwrap_or(256);
        if !(16..=65536).contains(&cache_mb) {
            return Err(err("store.cache_mb", "must be between 16 and 65536"));
        }
        let call_timeout_secs = raw.store.call_timeout_secs.unwrap_or(30);
        if !(1..=3600).contains(&call_timeout_secs) {
            return Err(err("store.call_timeout_secs", "must be between 1 and 3600"));
        }
        let open_timeout_secs = raw.store.open_timeout_secs.unwrap_or(600);
        if !(1..=86_400).contains(&open_timeout_secs) {
            return Err(err(
                "store.open_timeout_secs",
                "must be between 1 and 86400",
            ));
        }
        let checkpoint_secs = raw.audit.checkpoint_secs.unwrap_or(60);
        if !(1..=86_400).contains(&checkpoint_secs) {
            return Err(err("audit.checkpoint_secs", "must be between 1 and 86400"));
        }
        let calendar = Calendar::load(raw.calendar.as_deref().map(resolve).as_deref())
            .map_err(|e| err("calendar", e.to_string()))?;
        let publication = Publication::load(raw.publication.as_deref().map(resolve).as_deref())
            .map_err(|e| err("publication", e.to_string()))?;
        let purge_secs = raw.retention.purge_secs.unwrap_or(3600);
        if !(1..=86_400).contains(&purge_secs) {
            return Err(err("retention.purge_secs", "must be between 1 and 86400"));
        }
        let clock = match raw.clock.today.as_deref() {
            None => Clock::system(),
            Some(day) => chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map(Clock::on)
                .map_err(|_| err("clock.today", format!("{day:?} is not a date (YYYY-MM-DD)")))?,
        };
        let consent_max_term_years = raw.consent.max_term_years.unwrap_or(CONSENT_MAX_TERM_YEARS);
        if !(1..=30).contains(&consent_max_term_years) {
            return Err(err("consent.max_term_years", "must be between 1 and 30"));
        }
        let connections = raw.connections.check()?;
        Ok(Config {
            connections,
            consent_max_term_years,
            checkpoint_every: Duration::from_secs(checkpoint_secs),
            calendar: Arc::new(calendar),
            publication: Arc::new(publication),
            purge_every: Duration::from_secs(purge_secs),
            clock,
            region,
            name: raw.name,
            listen,
            data_dir: resolve(&raw.data_dir),
            tls,
            crl_reload,
            catalog: catalog_path,
            legacy_codes,
            providers,
            store: StoreOptions {
                cache_bytes: cache_mb * 1024 * 1024,
                call_timeout: Duration::from_secs(call_timeout_secs),
                open_timeout: Duration::from_secs(open_timeout_secs),
            },
            parent,
            children,
        })
    }

    pub fn child(&self, region: &RegionCode) -> Option<&Child> {
        self.children.iter().find(|c| c.region == *region)
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }
}

/// Names the key of a TOML or shape error. A shape error comes with the key path that
/// `serde_path_to_error` followed (`connections.idle_secs`, `providers[1].id`); that path
/// stops at the table for a missing field, so the field named in "missing field `x`" is
/// put after it. A syntax error has no path: the key is taken from the line it points at.
fn syntax_error(
    text: &str,
    e: &toml::de::Error,
    path: Option<&serde_path_to_error::Path>,
) -> ConfigError {
    use serde_path_to_error::Segment;
    let message = e.message();
    let named = ["unknown field `", "missing field `"].iter().find_map(|p| {
        message
            .split(p)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
    });
    let path = path.filter(|p| p.iter().next().is_some());
    let key = match (path, named, e.span()) {
        // An unknown field's path ends with the field; a missing one's at its table.
        (Some(p), Some(k), _) => match p.iter().next_back() {
            Some(Segment::Map { key }) if key == k => p.to_string(),
            _ => format!("{p}.{k}"),
        },
        (Some(p), None, _) => p.to_string(),
        (None, Some(k), _) => k.to_string(),
        (None, None, Some(span)) => {
            let start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line = text[start..].lines().next().unwrap_or("");
            match line.split_once('=') {
                Some((k, _)) if !k.trim().is_empty() => k.trim().to_string(),
                _ => format!("line {}", text[..start].lines().count() + 1),
            }
        }
        (None, None, None) => "(syntax)".to_string(),
    };
    err(key, message.trim().replace('\n', " "))
}

/// The child through which a notice for `target` travels down from this node: the
/// configured child that is the target or, by its code, contains it.
pub fn next_hop<'a>(children: &'a [Child], target: &RegionCode) -> Option<&'a Child> {
    children.iter().find(|c| c.region == *target).or_else(|| {
        children
            .iter()
            .find(|c| !c.exception && c.region.contains(target))
    })
}

#[cfg(test)]
mod tests;
