//! The demo's federation: Lingyuan (county) -> Chaoyang (city) -> Liaoning (province),
//! started top down on this machine with their providers, and the operators of each.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{CHAOYANG, LIAONING, LINGYUAN};
use crate::cli::CliError;
use crate::devnet::{DevNet, DevProvider};
use crate::domain::caller::Role;
use crate::server::{NodeHandle, start};

fn provider(id: &str, name: &str, categories: &[&str], uscc: &str) -> DevProvider {
    DevProvider {
        id: id.into(),
        name: name.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        uscc: Some(uscc.into()),
        // The regulators and the tax bureau are; the utilities are not.
        government: !id.contains("power") && !id.contains("water") && !id.contains("gas"),
    }
}

/// The three running nodes and the providers of the two lower ones.
pub(super) struct Federation {
    pub province: NodeHandle,
    pub city: NodeHandle,
    pub county: NodeHandle,
    pub lingyuan_providers: Vec<DevProvider>,
    pub chaoyang_providers: Vec<DevProvider>,
}

/// The identity folders of each node's operator.
pub(super) struct Operators {
    pub province: PathBuf,
    pub city: PathBuf,
    pub county: PathBuf,
}

impl Federation {
    /// Starts the three nodes of `net`.
    pub async fn start(net: &DevNet) -> Result<Federation, CliError> {
        let lingyuan_providers = vec![
            provider(
                "lingyuan-amr",
                "凌源市市场监督管理局",
                &["registration", "admin_license", "admin_penalty"],
                "11211382012345671P",
            ),
            provider(
                "lingyuan-power",
                "国网辽宁省电力有限公司凌源市供电分公司",
                &["power"],
                "91211382MA0Q2K8P1U",
            ),
        ];
        let chaoyang_providers = vec![
            provider(
                "chaoyang-tax",
                "国家税务总局朝阳市税务局",
                &["tax"],
                "11211300001144559B",
            ),
            provider(
                "chaoyang-hpf",
                "朝阳市住房公积金管理中心",
                &["housing_fund"],
                "122113004567123489",
            ),
        ];

        // Top down, so each child knows its parent's address.
        let province = start(net.federated_node_config(
            LIAONING,
            "辽宁省公共信用信息平台 (demo)",
            &[],
            None,
            &[CHAOYANG],
        )?)
        .await?;
        let city = start(net.federated_node_config(
            CHAOYANG,
            "朝阳市公共信用信息平台 (demo)",
            &chaoyang_providers,
            Some((LIAONING, &province.endpoint())),
            &[LINGYUAN],
        )?)
        .await?;
        let county = start(net.federated_node_config(
            LINGYUAN,
            "凌源市公共信用信息平台 (demo)",
            &lingyuan_providers,
            Some((CHAOYANG, &city.endpoint())),
            &[],
        )?)
        .await?;
        Ok(Federation {
            province,
            city,
            county,
            lingyuan_providers,
            chaoyang_providers,
        })
    }

    /// Polls the province until it holds `n` records or `limit` passes.
    pub async fn wait_for(&self, n: u64, limit: Duration) -> Result<bool, CliError> {
        let node = &self.province;
        let deadline = Instant::now() + limit;
        loop {
            if node.store().stats()?.records >= n {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shutdown(self) -> Result<(), CliError> {
        self.county.shutdown().await?;
        self.city.shutdown().await?;
        self.province.shutdown().await?;
        Ok(())
    }
}

impl Operators {
    pub fn of(net: &DevNet) -> Result<Operators, CliError> {
        let ops = |region: &str| net.identity(Role::Operator, region, &format!("ops-{region}"));
        Ok(Operators {
            province: ops(LIAONING)?,
            city: ops(CHAOYANG)?,
            county: ops(LINGYUAN)?,
        })
    }
}
