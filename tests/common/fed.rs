//! The three-level federation of the source documents in one process: Lingyuan
//! (211382) -> Chaoyang (211300) -> Liaoning (210000), each uplink through a `Proxy` so
//! tests can cut it or point it at a restarted parent.

use std::collections::BTreeMap;
use std::time::Duration;

use credit_node::devnet::{DevNet, DevProvider};
use credit_node::domain::clock::Clock;
use credit_node::server::{NodeHandle, start};

use super::proxy::Proxy;

pub const LIAONING: &str = "210000";
pub const CHAOYANG: &str = "211300";
pub const LINGYUAN: &str = "211382";

pub struct Fed {
    pub net: DevNet,
    pub province: Option<NodeHandle>,
    pub city: Option<NodeHandle>,
    pub county: Option<NodeHandle>,
    /// County -> city and city -> province links.
    pub county_link: Proxy,
    pub city_link: Proxy,
    _dir: tempfile::TempDir,
}

/// Chaoyang's market regulator, which reports what Lingyuan's does.
pub fn chaoyang_providers() -> Vec<DevProvider> {
    let lingyuan_amr = credit_node::devnet::sample_providers()
        .into_iter()
        .find(|p| p.id == "lingyuan-amr")
        .unwrap();
    vec![DevProvider {
        id: "chaoyang-amr".into(),
        name: "朝阳市市场监督管理局".into(),
        ..lingyuan_amr
    }]
}

/// Liaoning's config (written to `<dir>/210000/node.toml`): no providers, no parent,
/// Chaoyang its child.
pub fn province_config(net: &DevNet) -> credit_node::config::Config {
    net.federated_node_config(LIAONING, "辽宁省公共信用信息平台", &[], None, &[CHAOYANG])
        .unwrap()
}

/// Chaoyang's config, its uplink to Liaoning at `parent` (an endpoint), Lingyuan its child.
pub fn city_config(net: &DevNet, parent: Option<&str>) -> credit_node::config::Config {
    net.federated_node_config(
        CHAOYANG,
        "朝阳市公共信用信息平台",
        &chaoyang_providers(),
        parent.map(|endpoint| (LIAONING, endpoint)),
        &[LINGYUAN],
    )
    .unwrap()
}

/// Lingyuan's config, with the sample providers and its uplink to Chaoyang at `parent`.
pub fn county_config(net: &DevNet, parent: Option<&str>) -> credit_node::config::Config {
    net.federated_node_config(
        LINGYUAN,
        "凌源市公共信用信息平台",
        &credit_node::devnet::sample_providers(),
        parent.map(|endpoint| (CHAOYANG, endpoint)),
        &[],
    )
    .unwrap()
}

/// (id, version, content hash) of every record a node holds, by id.
pub type Holdings = BTreeMap<String, (u64, Vec<u8>)>;

impl Fed {
    pub async fn start() -> Fed {
        Fed::start_with_clock(super::clock()).await
    }

    /// The federation with one clock the test moves for all three nodes.
    pub async fn start_with_clock(clock: Clock) -> Fed {
        let dir = tempfile::tempdir().unwrap();
        let net = super::devnet(dir.path());
        let with_clock = |mut config: credit_node::config::Config| {
            config.clock = clock.clone();
            config
        };
        let province = start(with_clock(province_config(&net))).await.unwrap();
        let city_link = Proxy::start(province.addr).await;
        let city = start(with_clock(city_config(&net, Some(&city_link.endpoint()))))
            .await
            .unwrap();
        let county_link = Proxy::start(city.addr).await;
        let county = start(with_clock(county_config(
            &net,
            Some(&county_link.endpoint()),
        )))
        .await
        .unwrap();
        Fed {
            net,
            province: Some(province),
            city: Some(city),
            county: Some(county),
            county_link,
            city_link,
            _dir: dir,
        }
    }

    pub fn province(&self) -> &NodeHandle {
        self.province.as_ref().expect("province running")
    }
    pub fn city(&self) -> &NodeHandle {
        self.city.as_ref().expect("city running")
    }
    pub fn county(&self) -> &NodeHandle {
        self.county.as_ref().expect("county running")
    }

    /// Stops a node and starts it again on the same folder (and a new port, which its
    /// children reach through their proxy).
    pub async fn restart(slot: &mut Option<NodeHandle>, link_to_it: Option<&Proxy>) {
        let node = slot.take().expect("node running");
        let mut config = node.node.config.clone();
        node.shutdown().await.unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let node = start(config).await.unwrap();
        if let Some(link) = link_to_it {
            link.set_target(Some(node.addr));
        }
        *slot = Some(node);
    }
}

/// Every record's id, version and content hash, from the node's changelog as replayed
/// into current state (what a pull would show).
pub fn holdings(node: &NodeHandle) -> Holdings {
    let mut out = Holdings::new();
    for (_, change) in node.store().changes_since(0, usize::MAX).unwrap() {
        let Some(r) = change.into_record() else {
            continue;
        };
        let e = out.entry(r.id.to_string()).or_insert((0, Vec::new()));
        if r.version >= e.0 {
            *e = (r.version, r.content_hash.to_vec());
        }
    }
    out
}

/// What a node above both should hold: every record of either, at the newer version.
pub fn union(a: &Holdings, b: &Holdings) -> Holdings {
    let mut out = a.clone();
    for (id, (version, hash)) in b {
        let e = out.entry(id.clone()).or_insert((0, Vec::new()));
        if *version > e.0 {
            *e = (*version, hash.clone());
        }
    }
    out
}

/// Polls until `node` holds exactly `expected`, or `limit` passes; returns what it holds.
pub async fn wait_for_holdings(
    node: &NodeHandle,
    expected: &Holdings,
    limit: Duration,
) -> Holdings {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = holdings(node);
        if &now == expected || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
