//! The census on the three-level federation (R-FED-2..4): figures at each level equal a
//! recount, the regional total counts each record once, the ratio drops below 90 % while
//! a child's uplink is held back and recovers, and the monthly report names a late and a
//! missing provider (R-DATA-5, R-DATA-6).

mod common;

use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use common::fed::{CHAOYANG, Fed, LIAONING, LINGYUAN};
use common::{eventually, push_one, wire};
use credit_node::domain::caller::Role;
use credit_node::domain::clock::Clock;
use credit_node::domain::record::Draft;
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::policy::Catalog;
use credit_node::server::NodeHandle;
use tonic::transport::Channel;

async fn channel(fed: &Fed, node: &NodeHandle, role: Role, region: &str, id: &str) -> Channel {
    let identity = ClientIdentity::load(&fed.net.identity(role, region, id).unwrap()).unwrap();
    connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap()
}

async fn census(fed: &Fed, node: &NodeHandle, region: &str) -> pb::CensusReport {
    let mut client = pb::census_client::CensusClient::new(
        channel(fed, node, Role::Operator, region, "ops").await,
    );
    client
        .census(pb::CensusRequest::default())
        .await
        .unwrap()
        .into_inner()
}

fn drafts_for(categories: &[&str], n: usize, seed: u64, period: &str) -> Vec<Draft> {
    let catalog = Catalog::builtin().unwrap();
    credit_node::policy::sample::generate_drafts_in(
        &catalog,
        categories,
        n,
        n / 3 + 1,
        seed,
        period,
    )
}

async fn push(fed: &Fed, node: &NodeHandle, region: &str, provider: &str, drafts: &[Draft]) {
    let mut client = pb::exchange_client::ExchangeClient::new(
        channel(fed, node, Role::Provider, region, provider).await,
    );
    for chunk in drafts.chunks(1000) {
        let r = push_one(&mut client, wire(chunk)).await.unwrap();
        assert_eq!(r.rejected, 0, "{r:?}");
    }
}

fn child<'a>(report: &'a pb::CensusReport, region: &str) -> &'a pb::ChildFigures {
    report
        .platform
        .as_ref()
        .unwrap()
        .children
        .iter()
        .find(|c| c.platform.as_ref().is_some_and(|p| p.region == region))
        .unwrap()
}

#[tokio::test]
async fn figures_at_each_level_a_deduplicated_total_and_a_ratio_that_drops_while_held_back() {
    let fed = Fed::start().await;
    let period = common::previous_month();
    let at_county = drafts_for(&["admin_penalty", "admin_license"], 300, 1, &period);
    let power = drafts_for(&["power"], 120, 2, &period);
    let at_city = drafts_for(&["registration"], 200, 3, &period);
    push(&fed, fed.county(), LINGYUAN, "lingyuan-amr", &at_county).await;
    push(&fed, fed.county(), LINGYUAN, "lingyuan-power", &power).await;
    push(&fed, fed.city(), CHAOYANG, "chaoyang-amr", &at_city).await;
    let (county_n, city_n) = ((at_county.len() + power.len()) as u64, at_city.len() as u64);
    assert!(
        eventually(Duration::from_secs(30), || async {
            fed.province().store().stats().unwrap().records == county_n + city_n
        })
        .await
    );

    for node in [fed.county(), fed.city(), fed.province()] {
        let store = node.store();
        assert_eq!(store.figures().unwrap(), store.recount().unwrap());
    }
    let lingyuan = census(&fed, fed.county(), LINGYUAN).await;
    let p = lingyuan.platform.as_ref().unwrap();
    assert_eq!(p.total, county_n);
    assert_eq!(p.natural + p.legal, p.total);
    assert!(p.natural > 0 && p.legal > 0);
    assert_eq!(lingyuan.by_category["power"], power.len() as u64);
    assert_eq!(
        lingyuan.by_provider[&format!("{LINGYUAN}/lingyuan-power")],
        power.len() as u64
    );

    // Chaoyang: its own and Lingyuan's, and Lingyuan's stock all held.
    assert!(
        eventually(Duration::from_secs(60), || async {
            let c = census(&fed, fed.city(), CHAOYANG).await;
            let l = child(&c, LINGYUAN);
            c.platform.as_ref().unwrap().total == county_n + city_n
                && l.platform.as_ref().unwrap().total == county_n
                && l.held == county_n
        })
        .await
    );
    // Liaoning: every record once, however many levels it passed.
    assert!(
        eventually(Duration::from_secs(60), || async {
            let c = census(&fed, fed.province(), LIAONING).await;
            let cy = child(&c, CHAOYANG);
            let grand = cy.platform.as_ref().unwrap().children.first().cloned();
            c.platform.as_ref().unwrap().total == county_n + city_n
                && cy.platform.as_ref().unwrap().total == county_n + city_n
                && cy.held == county_n + city_n
                && grand
                    .is_some_and(|g| g.held == county_n && g.platform.unwrap().total == county_n)
        })
        .await
    );

    // Hold back Lingyuan's uplink: cut, push more, reconnect at a trickle.
    fed.county_link.set_target(None);
    fed.county_link.cut();
    let more = drafts_for(&["admin_penalty"], 3000, 9, &period);
    push(&fed, fed.county(), LINGYUAN, "lingyuan-amr", &more).await;
    let stock = county_n + more.len() as u64;
    fed.county_link.throttle(100_000);
    fed.county_link.set_target(Some(fed.city().addr));
    assert!(
        eventually(Duration::from_secs(30), || async {
            let c = census(&fed, fed.city(), CHAOYANG).await;
            let l = child(&c, LINGYUAN);
            let reported = l.platform.as_ref().unwrap().total;
            reported == stock && (l.held as f64) < 0.9 * stock as f64
        })
        .await,
        "the city sees Lingyuan's new stock before it holds 90% of it"
    );
    // The CLI's JSON: region, total, natural, legal, children with region, stock, held, ratio.
    let json = census_json(&fed, CHAOYANG).await;
    let l = json["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == LINGYUAN)
        .unwrap()
        .clone();
    assert_eq!(l["stock"].as_u64(), Some(stock));
    assert!(l["ratio"].as_f64().unwrap() < 1.0, "{l}");
    assert!(json["total"].as_u64().is_some() && json["natural"].as_u64().is_some());

    fed.county_link.throttle(0);
    assert!(
        eventually(Duration::from_secs(30), || async {
            let c = census(&fed, fed.city(), CHAOYANG).await;
            child(&c, LINGYUAN).held == stock
        })
        .await,
        "caught up, the ratio is 100%"
    );
    for node in [fed.county(), fed.city(), fed.province()] {
        assert_eq!(
            node.store().figures().unwrap(),
            node.store().recount().unwrap()
        );
    }
}

/// `credit-node census --json` against the node of `region`, as its operator.
async fn census_json(fed: &Fed, region: &str) -> serde_json::Value {
    let node = match region {
        CHAOYANG => fed.city(),
        LINGYUAN => fed.county(),
        _ => fed.province(),
    };
    let identity = fed.net.identity(Role::Operator, region, "ops").unwrap();
    let endpoint = node.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        common::bin()
            .args(["census", "--json", "--endpoint", &endpoint, "--identity"])
            .arg(&identity)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The monthly duty on days where a calendar slip shows: the first and last day of a
/// month, 29 February, the turn of a year and a 调休 working Saturday. Until this ran on a
/// fixed clock it failed early in every month, dating the current month's records after
/// today.
#[tokio::test]
async fn the_monthly_report_names_a_late_and_a_missing_provider_r_data_5() {
    for day in [
        "2026-12-01", // first day of a month
        "2026-11-30", // last day of a month
        "2028-02-29", // 29 February
        "2026-12-31", // last day of a year
        "2027-01-01", // first day of a year
        "2026-10-10", // a 调休 working Saturday after National Day
        &common::today().to_string(),
    ] {
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        monthly_report_on(day).await;
    }
}

/// Records of the current month dated no later than `today`, as a provider's would be.
fn not_after(mut drafts: Vec<Draft>, today: NaiveDate) -> Vec<Draft> {
    let clamp = |d: &mut String| {
        if NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok_and(|x| x > today) {
            *d = today.to_string();
        }
    };
    for d in &mut drafts {
        clamp(&mut d.occurred_on);
        if let Some(e) = d.ended_on.as_mut() {
            clamp(e);
        }
        d.fields.values_mut().for_each(clamp);
    }
    drafts
}

async fn monthly_report_on(today: NaiveDate) {
    let fed = Fed::start_with_clock(Clock::on(today)).await;
    let month = |back: u32| {
        let d = today.with_day(1).unwrap() - chrono::Months::new(back);
        format!("{:04}-{:02}", d.year(), d.month())
    };
    // Two months ago: the deadline (the 23rd of last month) has passed.
    let old = month(2);
    let current = month(0);
    push(
        &fed,
        fed.county(),
        LINGYUAN,
        "lingyuan-amr",
        &drafts_for(&["admin_penalty"], 40, 4, &old),
    )
    .await;
    push(
        &fed,
        fed.county(),
        LINGYUAN,
        "lingyuan-amr",
        &not_after(drafts_for(&["admin_license"], 10, 5, &current), today),
    )
    .await;

    let mut client = pb::census_client::CensusClient::new(
        channel(&fed, fed.county(), Role::Operator, LINGYUAN, "ops").await,
    );
    let report = client
        .monthly(pb::MonthlyRequest {
            period: old.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let state = |id: &str| {
        report
            .providers
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .clone()
    };
    let amr = state("lingyuan-amr");
    assert_eq!(amr.state, "late", "on {today}");
    assert_eq!(amr.records, 40);
    assert!(amr.first_ms > 0 && amr.last_ms >= amr.first_ms);
    assert_eq!(state("lingyuan-power").state, "missing");
    let now = client
        .monthly(pb::MonthlyRequest { period: current })
        .await
        .unwrap()
        .into_inner();
    let amr_now = now
        .providers
        .iter()
        .find(|p| p.id == "lingyuan-amr")
        .unwrap();
    assert_eq!(amr_now.state, "on_time", "on {today}");
    assert_eq!(amr_now.records, 10);
    assert_eq!(
        now.providers
            .iter()
            .find(|p| p.id == "lingyuan-power")
            .unwrap()
            .state,
        "due"
    );
    // A bad period is refused with its field and rule.
    let s = client
        .monthly(pb::MonthlyRequest {
            period: "2026-13".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(
        s.message().contains("period") && s.message().contains("R-DATA-5"),
        "{s:?}"
    );
}
