//! A node killed with SIGKILL in the middle of a push loses no acknowledged record and
//! duplicates none (R-NODE-4). The node runs as a real `credit-node serve` process.

mod common;

use common::proc::Proc;
use common::*;
use credit_node::domain::caller::Role;
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::pb::exchange_client::ExchangeClient;
use tokio_stream::StreamExt;

struct Net {
    _dir: tempfile::TempDir,
    net: credit_node::devnet::DevNet,
    config: std::path::PathBuf,
}

fn net() -> Net {
    let dir = tempfile::tempdir().unwrap();
    let net = common::devnet(dir.path());
    net.node_config(LINGYUAN, "凌源市公共信用信息平台", &providers())
        .unwrap();
    let config = dir.path().join(LINGYUAN).join("node.toml");
    Net {
        _dir: dir,
        net,
        config,
    }
}

async fn client(n: &Net, endpoint: &str) -> ExchangeClient<tonic::transport::Channel> {
    let identity = ClientIdentity::load(
        &n.net
            .identity(Role::Provider, LINGYUAN, "lingyuan-amr")
            .unwrap(),
    )
    .unwrap();
    let channel = connect(endpoint, &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();
    ExchangeClient::new(channel)
}

/// Pushes every batch on one stream and returns the outcomes received before the
/// stream broke (or all of them).
async fn push_all(
    client: &mut ExchangeClient<tonic::transport::Channel>,
    batches: Vec<pb::PushBatch>,
    mut after: impl FnMut(usize),
) -> Vec<pb::RecordOutcome> {
    let mut outcomes = Vec::new();
    let Ok(response) = client.push(tokio_stream::iter(batches)).await else {
        return outcomes;
    };
    let mut results = response.into_inner();
    let mut n = 0;
    while let Some(Ok(r)) = results.next().await {
        outcomes.extend(r.outcomes);
        n += 1;
        after(n);
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_push_loses_and_duplicates_nothing() {
    let n = net();
    let records = wire(&drafts("admin_penalty", 6_000, 11));
    let batches = |records: &[pb::Record]| -> Vec<pb::PushBatch> {
        records
            .chunks(200)
            .enumerate()
            .map(|(i, c)| pb::PushBatch {
                batch_ref: i.to_string(),
                records: c.to_vec(),
            })
            .collect()
    };

    let mut server = Proc::serve(&n.config);
    let mut c = client(&n, &server.endpoint()).await;
    let mut killed = false;
    let acked = push_all(&mut c, batches(&records), |done| {
        if done == 8 && !killed {
            server.kill();
            killed = true;
        }
    })
    .await;
    assert!(killed, "the server was killed mid-stream");
    assert!(
        acked.len() >= 8 * 200 && acked.len() < records.len(),
        "acknowledged {}",
        acked.len()
    );

    // Restart on the same data folder and push everything again.
    let mut server = Proc::serve(&n.config);
    let mut c = client(&n, &server.endpoint()).await;
    let second = push_all(&mut c, batches(&records), |_| {}).await;
    assert_eq!(second.len(), records.len());
    let by_index: Vec<&pb::RecordOutcome> = second.iter().collect();
    for (i, a) in acked.iter().enumerate() {
        // Batches are in order, so the i-th acknowledged outcome is record i.
        let again = by_index[i];
        assert_eq!(
            again.outcome,
            pb::Outcome::Unchanged as i32,
            "acknowledged record {i} was lost"
        );
        assert_eq!(
            (again.record_id.as_str(), again.version),
            (a.record_id.as_str(), 1)
        );
    }
    let created = second
        .iter()
        .filter(|o| o.outcome == pb::Outcome::Created as i32)
        .count();
    let unchanged = second
        .iter()
        .filter(|o| o.outcome == pb::Outcome::Unchanged as i32)
        .count();
    assert_eq!(created + unchanged, records.len());

    // A third push finds every record exactly once.
    let third = push_all(&mut c, batches(&records), |_| {}).await;
    assert!(
        third
            .iter()
            .all(|o| o.outcome == pb::Outcome::Unchanged as i32 && o.version == 1)
    );
    let mut ids: Vec<&str> = third.iter().map(|o| o.record_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        records.len(),
        "one record per provider reference"
    );
    server.kill();
}
