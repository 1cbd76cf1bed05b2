//! Platform census reports on the wire (`credit.v1.PlatformFigures`), both ways.

use crate::domain::census::PlatformReport;
use crate::pb;

impl PlatformReport {
    pub fn to_wire(&self) -> pb::PlatformFigures {
        pb::PlatformFigures {
            region: self.region.clone(),
            name: self.name.clone(),
            total: self.total,
            natural: self.natural,
            legal: self.legal,
            at_ms: self.at_ms,
            children: self
                .children
                .iter()
                .map(|(c, held)| pb::ChildFigures {
                    platform: Some(c.to_wire()),
                    held: *held,
                    refused: 0,
                })
                .collect(),
        }
    }

    /// From a child's report; at most `depth` levels below it are kept.
    pub fn from_wire(f: &pb::PlatformFigures, depth: usize) -> PlatformReport {
        PlatformReport {
            region: f.region.clone(),
            name: f.name.chars().take(200).collect(),
            total: f.total,
            natural: f.natural,
            legal: f.legal,
            at_ms: f.at_ms,
            children: if depth == 0 {
                Vec::new()
            } else {
                f.children
                    .iter()
                    .filter_map(|c| {
                        Some((
                            PlatformReport::from_wire(c.platform.as_ref()?, depth - 1),
                            c.held,
                        ))
                    })
                    .collect()
            },
        }
    }
}
