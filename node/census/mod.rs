//! 数据普查: the census of credit data a platform holds and passes up (R-FED-2..4), the
//! collection ratio of each child, and providers' monthly reporting duty (R-DATA-5, -6).
//!
//! The figures come from the store's incrementally kept counters (`domain::census::Figures`),
//! which a full recount reproduces exactly. Each child reports its own figures (and its
//! children's) up the uplink with every batch; a parent keeps the latest report per
//! child and counts how many of that child's records it holds.

pub mod service;

use crate::domain::census::PlatformReport;
use crate::domain::region::RegionCode;
use crate::store::{Store, StoreError};

/// This node's own report: its figures, and each configured child's last report with
/// how many of that child's records are held here.
pub fn own_report(
    store: &Store,
    region: &RegionCode,
    name: &str,
    children: &[RegionCode],
    now_ms: i64,
) -> Result<PlatformReport, StoreError> {
    let f = store.figures()?;
    let reported = store.child_reports()?;
    let children = children
        .iter()
        .map(|c| {
            let report = reported
                .iter()
                .find(|r| r.region == c.as_str())
                .cloned()
                .unwrap_or_else(|| PlatformReport {
                    region: c.to_string(),
                    ..Default::default()
                });
            let held = f.via_child.get(c.as_str()).copied().unwrap_or(0);
            (report, held)
        })
        .collect();
    Ok(PlatformReport {
        region: region.to_string(),
        name: name.to_string(),
        total: f.total,
        natural: f.natural,
        legal: f.legal,
        at_ms: now_ms,
        children,
    })
}
