//! A development federation on one machine: a CA, identities and node configs in one
//! folder, written by the project's own PKI code. The demo, the benchmarks and the
//! integration tests build their nodes with it; nothing here is used by `serve`.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::domain::caller::{CallerId, Role};
use crate::domain::region::RegionCode;
use crate::identity::pki::{self, DevCa, PkiError};

#[derive(Debug, thiserror::Error)]
pub enum DevNetError {
    #[error("PKI: {0}")]
    Pki(#[from] PkiError),
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A provider to register in a node's config.
#[derive(Clone, Debug)]
pub struct DevProvider {
    pub id: String,
    pub name: String,
    pub categories: Vec<String>,
    pub uscc: Option<String>,
    /// A government body (R-REL-5: may query for its statutory duty).
    pub government: bool,
}

/// The two Lingyuan providers whose records the files in `samples/` are: the market
/// regulator (registration, licences, penalties) and the power company.
pub fn sample_providers() -> Vec<DevProvider> {
    vec![
        DevProvider {
            id: "lingyuan-amr".into(),
            name: "凌源市市场监督管理局".into(),
            categories: vec![
                "registration".into(),
                "admin_license".into(),
                "admin_penalty".into(),
            ],
            uscc: None,
            government: true,
        },
        DevProvider {
            id: "lingyuan-power".into(),
            name: "国网辽宁省电力有限公司凌源市供电分公司".into(),
            categories: vec!["power".into()],
            uscc: None,
            government: false,
        },
    ]
}

/// A folder holding a development CA (`ca/`), identities (`ids/`) and nodes' configs and
/// data (`<region>/`).
pub struct DevNet {
    dir: PathBuf,
    ca: DevCa,
    /// The day every node config written here starts its clock on (`[clock] today`).
    today: Option<chrono::NaiveDate>,
}

impl DevNet {
    /// Makes a new CA in `dir/ca`.
    pub fn create(dir: &Path) -> Result<DevNet, DevNetError> {
        let ca_dir = dir.join("ca");
        pki::init(&ca_dir)?;
        let ca = DevCa::load(&ca_dir)?;
        Ok(DevNet {
            dir: dir.to_path_buf(),
            ca,
            today: None,
        })
    }

    /// Every node config written from now on starts its clock at noon of `day`, so a
    /// test's nodes (in-process or the real binary) see the same fixed date.
    pub fn pinned_to(mut self, day: chrono::NaiveDate) -> DevNet {
        self.today = Some(day);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }

    /// Issues a certificate for `role`/`region`/`id` and writes it to
    /// `ids/<role>-<region>-<id>/`; returns that identity folder.
    pub fn identity(&self, role: Role, region: &str, id: &str) -> Result<PathBuf, DevNetError> {
        let region = RegionCode::parse(region).map_err(|e| ConfigError {
            key: "region".into(),
            reason: e.to_string(),
        })?;
        let caller = CallerId::new(role, region, id);
        let out = self.dir.join("ids").join(format!("{role}-{region}-{id}"));
        let hosts = if role == Role::Node {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        } else {
            Vec::new()
        };
        self.ca.issue(&caller, &hosts)?.write(&out)?;
        Ok(out)
    }

    /// Revokes the certificate in an identity folder; nodes reread the CRL.
    pub fn revoke(&self, identity: &Path) -> Result<(), DevNetError> {
        pki::revoke(&self.ca_dir(), &identity.join("cert.pem"))?;
        Ok(())
    }

    /// Writes `<region>/node.toml` for a node listening on 127.0.0.1:0 with its data in
    /// `<region>/data`, issues its certificate, and loads the config as `serve` would.
    pub fn node_config(
        &self,
        region: &str,
        name: &str,
        providers: &[DevProvider],
    ) -> Result<Config, DevNetError> {
        self.federated_node_config(region, name, providers, None, &[])
    }

    /// `node_config` with a parent (`region`, `endpoint`) and children.
    pub fn federated_node_config(
        &self,
        region: &str,
        name: &str,
        providers: &[DevProvider],
        parent: Option<(&str, &str)>,
        children: &[&str],
    ) -> Result<Config, DevNetError> {
        let node_dir = self.dir.join(region);
        std::fs::create_dir_all(&node_dir).map_err(|source| DevNetError::Io {
            path: node_dir.clone(),
            source,
        })?;
        let identity = self.identity(Role::Node, region, &format!("node-{region}"))?;
        let mut toml = format!(
            "region = {region:?}\nname = {name:?}\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
             [tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\ncrl = {:?}\ncrl_reload_secs = 1\n",
            self.ca_dir().join("ca.pem"),
            identity.join("cert.pem"),
            identity.join("key.pem"),
            self.ca_dir().join("crl.pem"),
        );
        if let Some((parent, endpoint)) = parent {
            toml.push_str(&format!(
                "\n[parent]\nregion = {parent:?}\nendpoint = {endpoint:?}\n"
            ));
        }
        for child in children {
            toml.push_str(&format!("\n[[children]]\nregion = {child:?}\n"));
        }
        if let Some(day) = self.today {
            toml.push_str(&format!("\n[clock]\ntoday = \"{day}\"\n"));
        }
        for p in providers {
            toml.push_str(&format!(
                "\n[[providers]]\nid = {:?}\nname = {:?}\ncategories = {:?}\n",
                p.id, p.name, p.categories
            ));
            if let Some(uscc) = &p.uscc {
                toml.push_str(&format!("uscc = {uscc:?}\n"));
            }
            if p.government {
                toml.push_str("government = true\n");
            }
        }
        let path = node_dir.join("node.toml");
        std::fs::write(&path, toml).map_err(|source| DevNetError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Config::load(&path)?)
    }
}
