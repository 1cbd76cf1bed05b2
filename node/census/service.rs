//! The Census service: this node's figures and its children's collection ratios, and the
//! registered providers' monthly submissions (operators of the node).

use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use super::own_report;
use crate::domain::census::{PlatformReport, deadline, duty_state};
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::rpc::Context;
use crate::rpc::refusal::{Refusal, store_status};

#[derive(Clone)]
pub struct CensusService {
    ctx: Context,
}

impl CensusService {
    pub fn new(node: &Context) -> Self {
        CensusService { ctx: node.clone() }
    }

    /// Appends the read's usage entry through the node's group-commit writer.
    async fn log(&self, entry: UsageEntry) -> Result<(), Status> {
        self.ctx
            .usage
            .append(vec![entry])
            .await
            .map_err(|e| store_status(&e))
    }

    fn children(&self) -> Vec<crate::domain::region::RegionCode> {
        self.ctx.config.children.iter().map(|c| c.region).collect()
    }
}

#[tonic::async_trait]
impl pb::census_server::Census for CensusService {
    async fn census(
        &self,
        request: Request<pb::CensusRequest>,
    ) -> Result<Response<pb::CensusReport>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Census, Action::Status)
            .await?;
        let as_of = request.into_inner().as_of;
        let store = self.ctx.store.clone();
        let day = if as_of.trim().is_empty() {
            None
        } else {
            match NaiveDate::parse_from_str(as_of.trim(), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    let r = Refusal::invalid("as_of", "R-FED-2", "must be a date YYYY-MM-DD");
                    return Err(self
                        .ctx
                        .gate
                        .refuse(Some(&caller), "Census", Action::Status, r)
                        .await);
                }
            }
        };
        let (region, name, children) = (
            self.ctx.config.region,
            self.ctx.config.name.clone(),
            self.children(),
        );
        let now = self.ctx.clock.now_ms();
        let report = self
            .ctx
            .store
            .call(move |_| {
                let figures = match day {
                    Some(d) => store.figures_as_of(d)?,
                    None => store.figures()?,
                };
                let mut platform = own_report(&store, &region, &name, &children, now)?;
                if day.is_some() {
                    // The children's reports are the latest, not as of that day.
                    platform.total = figures.total;
                    platform.natural = figures.natural;
                    platform.legal = figures.legal;
                    for (child, held) in &mut platform.children {
                        *held = figures.via_child.get(&child.region).copied().unwrap_or(0);
                    }
                }
                let refused = store.quarantine_counts()?;
                Ok::<_, crate::store::StoreError>((platform, figures, refused))
            })
            .await
            .map_err(|e| store_status(&e))?;
        let (platform, figures, refused): (PlatformReport, _, _) = report;
        // Refused from below (R-FED-1): what this node keeps in quarantine, by child.
        let mut wire = platform.to_wire();
        for c in &mut wire.children {
            let region = c.platform.as_ref().map(|p| p.region.as_str()).unwrap_or("");
            c.refused = refused
                .iter()
                .find(|(r, _)| r.as_str() == region)
                .map_or(0, |(_, n)| *n);
        }
        let mut e = UsageEntry::new(
            caller.uri(),
            Action::Status,
            "Census",
            self.ctx.clock.now_ms(),
        );
        e.detail = format!("census read: {} records", platform.total);
        self.log(e).await?;
        Ok(Response::new(pb::CensusReport {
            platform: Some(wire),
            refused_from_below: refused.values().sum(),
            by_category: figures.by_category.into_iter().collect(),
            by_provider: figures.by_provider.into_iter().collect(),
            as_of: day.map(|d| d.to_string()).unwrap_or_default(),
        }))
    }

    async fn monthly(
        &self,
        request: Request<pb::MonthlyRequest>,
    ) -> Result<Response<pb::MonthlyReport>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Census, Action::Status)
            .await?;
        let period = request.into_inner().period.trim().to_string();
        let Some(due) = deadline(&period).filter(|_| period.len() == 7) else {
            let r = Refusal::invalid("period", "R-DATA-5", "must be a reporting period YYYY-MM");
            return Err(self
                .ctx
                .gate
                .refuse(Some(&caller), "Monthly", Action::Status, r)
                .await);
        };
        let today = self.ctx.clock.today();
        let mut providers = Vec::with_capacity(self.ctx.config.providers.len());
        for p in &self.ctx.config.providers {
            let m = self
                .ctx
                .store
                .monthly(&p.id, &period)
                .map_err(|e| store_status(&e))?;
            providers.push(pb::ProviderDuty {
                id: p.id.clone(),
                name: p.name.clone(),
                uscc: p.uscc.clone().unwrap_or_default(),
                categories: p.categories.clone(),
                records: m.records,
                first_ms: m.first_ms,
                last_ms: m.last_ms,
                state: duty_state(&m, due, today).to_string(),
                contacts: p
                    .contacts
                    .iter()
                    .map(|c| pb::Contact {
                        role: c.role.to_string(),
                        name: c.name.clone(),
                        title: c.title.clone(),
                        mobile: c.mobile.clone(),
                    })
                    .collect(),
            });
        }
        let mut e = UsageEntry::new(
            caller.uri(),
            Action::Status,
            "Monthly",
            self.ctx.clock.now_ms(),
        );
        e.detail = format!("monthly report for {period}");
        self.log(e).await?;
        Ok(Response::new(pb::MonthlyReport {
            period,
            deadline: due.to_string(),
            providers,
        }))
    }
}
