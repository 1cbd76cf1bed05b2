//! Issue 11, items 2 and 5 and the consent term, across the wire: a public answer about
//! a person carries none of the person's identifiers, whatever free text they were
//! typed into (R-REL-2, R-DATA-3), while the `self` basis still sees everything; the
//! usage log keeps no identifier from free text; dates and amounts inside `fields` are
//! checked like the record's own dates (R-DATA-4); a consent's term is capped (R-REL-4).
//! Every refusal names the field and the rule, is logged, and changes no data.
//!
//! The node's clock is pinned to fixed dates; nothing here reads the wall clock.

mod common;

use chrono::NaiveDate;
use common::{LINGYUAN, providers, push_one};
use credit_node::devnet::DevNet;
use credit_node::domain::caller::Role;
use credit_node::domain::clock::Clock;
use credit_node::domain::record::{Draft, SubjectKind};
use credit_node::domain::usage::{Outcome, UsageEntry};
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::rpc::convert::record::draft_to_wire;
use credit_node::server::{NodeHandle, start};
use tonic::Code;
use tonic::transport::Channel;

/// The person every record here is about: a valid resident id (born 1980-02-29), a
/// name, a mobile and a bank card (Luhn-valid).
const ID: &str = "211382198002290134";
const NAME: &str = "王建国";
const MOBILE: &str = "13812345678";
const CARD: &str = "6222021234567890128";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// One Lingyuan node whose clock reads `today`.
struct Node {
    net: DevNet,
    node: NodeHandle,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(today: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let net = common::devnet(dir.path());
        let mut config = net
            .node_config(LINGYUAN, "凌源市公共信用信息平台", &providers())
            .unwrap();
        config.clock = Clock::on(day(today));
        let node = start(config).await.unwrap();
        Node {
            net,
            node,
            _dir: dir,
        }
    }

    async fn channel(&self, role: Role, id: &str) -> Channel {
        let identity =
            ClientIdentity::load(&self.net.identity(role, LINGYUAN, id).unwrap()).unwrap();
        connect(&self.node.endpoint(), &identity, ExpectedServer::AnyNode)
            .await
            .unwrap()
    }

    async fn amr(&self) -> pb::exchange_client::ExchangeClient<Channel> {
        pb::exchange_client::ExchangeClient::new(self.channel(Role::Provider, "lingyuan-amr").await)
    }

    async fn query(&self, role: Role, id: &str, req: pb::QueryRequest) -> pb::QueryResult {
        pb::query_client::QueryClient::new(self.channel(role, id).await)
            .query(req)
            .await
            .unwrap()
            .into_inner()
    }

    fn usage_count(&self) -> u64 {
        self.node.store().stats().unwrap().usage_entries
    }

    /// The entries written after the first `after`.
    fn usage_after(&self, after: u64) -> Vec<UsageEntry> {
        self.node
            .store()
            .usage_since(after, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(_, c)| c.entry)
            .collect()
    }
}

/// A penalty on the person whose free text, decision number and reference all carry the
/// person's identifiers, as providers really type them.
fn penalty_naming_everything(today: &str) -> Draft {
    let fields = [
        (
            "facts",
            format!(
                "当事人{NAME}（公民身份号码{ID}，联系电话{MOBILE}，收款账户{CARD}）\
                 未经许可从事经营活动；个体工商户 92211382MA0Y8L6X3K。"
            ),
        ),
        (
            "decision_no",
            format!("凌市监罚决〔2026〕7号（{NAME} {ID}）"),
        ),
        ("penalty_type", "罚款".to_string()),
        ("decided_on", today.to_string()),
        ("authority", "凌源市市场监督管理局".to_string()),
        ("fine_amount", "0.5".to_string()),
        ("remarks", format!("{NAME}本人手机 138 1234 5678")),
    ];
    Draft {
        subject_kind: Some(SubjectKind::Natural),
        subject_id: ID.into(),
        subject_name: NAME.into(),
        category: "admin_penalty".into(),
        provider_ref: format!("CF-{ID}-{MOBILE}"),
        occurred_on: today.into(),
        ended_on: None,
        period: today[..7].into(),
        adverse: Some(true),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// Pushes `penalty_naming_everything(today)` as the market regulator `amr`.
async fn push_penalty(
    amr: &mut pb::exchange_client::ExchangeClient<Channel>,
    today: &str,
) -> pb::PushResult {
    let draft = penalty_naming_everything(today);
    push_one(amr, vec![draft_to_wire(&draft)]).await.unwrap()
}

fn ask(basis: pb::LegalBasis, reference: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        subject_id: ID.into(),
        purpose: "other".into(),
        basis: basis as i32,
        legal_reference: reference.into(),
        ..Default::default()
    }
}

/// Every identifier of the person that appears in clear in `text`.
fn identifiers_in(text: &str) -> Vec<&'static str> {
    [ID, NAME, MOBILE, CARD, "92211382MA0Y8L6X3K", "1234 5678"]
        .into_iter()
        .filter(|s| text.contains(s))
        .collect()
}

#[tokio::test]
async fn public_answer_masks_ids_names_mobiles_and_cards_in_free_text_r_rel_2() {
    let today = "2026-02-28";
    let n = Node::start(today).await;
    let mut amr = n.amr().await;
    let r = push_penalty(&mut amr, today).await;
    assert_eq!(r.accepted, 1, "{r:?}");

    let public = n
        .query(Role::Agency, "news-agency", ask(pb::LegalBasis::Public, ""))
        .await;
    assert!(public.masked);
    assert_eq!(public.records.len(), 1);
    let record = &public.records[0];
    let all = format!("{record:?}");
    assert_eq!(identifiers_in(&all), Vec::<&str>::new(), "{all}");
    // Masked, not dropped: the released text still reads. The id and the mobile joined
    // by a hyphen are one long number in a person's text: masked as a whole.
    assert_eq!(record.provider_ref, "CF-2113**************-*******5678");
    assert!(
        record.fields["facts"]
            .starts_with("当事人王**（公民身份号码2113**********0134，联系电话138****5678"),
        "{}",
        record.fields["facts"]
    );
    assert!(record.fields["decision_no"].starts_with("凌市监罚决〔2026〕7号"));
    assert_eq!(record.fields["fine_amount"], "0.5");
    assert!(
        !record.fields.contains_key("remarks"),
        "remarks are withheld"
    );

    // The subject at a service window sees the record as held.
    let own = n
        .query(
            Role::Operator,
            "window-1",
            ask(pb::LegalBasis::Self_, &format!("居民身份证 {ID} 已核验")),
        )
        .await;
    assert!(!own.masked);
    let record = &own.records[0];
    assert_eq!(record.subject.as_ref().unwrap().id, ID);
    assert!(record.fields["facts"].contains(ID) && record.fields["facts"].contains(CARD));
    assert!(record.fields["remarks"].contains(NAME));
    assert_eq!(record.provider_ref, format!("CF-{ID}-{MOBILE}"));
}

#[tokio::test]
async fn usage_entries_keep_no_identifier_from_free_text_r_data_3() {
    let today = "2026-02-28";
    let n = Node::start(today).await;
    let mut amr = n.amr().await;
    push_penalty(&mut amr, today).await;
    let before = n.usage_count();
    // A reference naming the document checked, and a refusal quoting what was typed.
    n.query(
        Role::Operator,
        "window-1",
        ask(
            pb::LegalBasis::Self_,
            &format!("居民身份证 {ID}（{NAME}），电话 {MOBILE}，卡 {CARD}"),
        ),
    )
    .await;
    let mut bad = penalty_naming_everything(today);
    bad.category = format!("x{ID}");
    let r = push_one(&mut amr, vec![draft_to_wire(&bad)]).await.unwrap();
    let refusal = r.outcomes[0].refusal.as_ref().unwrap();
    assert_eq!(refusal.field, "category");
    let entries = n.usage_after(before);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let query = &entries[0];
    assert!(
        query
            .detail
            .contains("reference: 居民身份证 2113**********0134"),
        "{}",
        query.detail
    );
    let push = &entries[1];
    let Outcome::Refused { message, field, .. } = &push.outcome else {
        panic!("not refused: {push:?}");
    };
    assert_eq!(field, "category");
    assert!(
        message.starts_with("unknown category \"x211") && message.contains("****"),
        "{message}"
    );
    for e in &entries {
        let free_text = format!("{} {:?}", e.detail, e.outcome);
        assert_eq!(
            identifiers_in(&free_text),
            Vec::<&str>::new(),
            "{free_text}"
        );
    }
    // The subject still finds the use in its history: the subject field is whole.
    assert_eq!(query.subject.as_deref(), Some(ID));
}

#[tokio::test]
async fn dates_and_amounts_in_fields_are_refused_logged_and_store_nothing_r_data_4() {
    // The last day of a leap February: the day after is already the future.
    let today = "2028-02-29";
    let n = Node::start(today).await;
    let mut amr = n.amr().await;
    let good = penalty_naming_everything(today);
    push_one(&mut amr, vec![draft_to_wire(&good)])
        .await
        .unwrap();
    let fingerprint = n.node.store().fingerprint().unwrap();
    let before = n.usage_count();

    // (what is set, to what, the field and rule refused, what the message says)
    let cases = [
        (
            "decided_on",
            "9999-12-31",
            "fields.decided_on",
            "R-DATA-4",
            "after today (2028-02-29)",
        ),
        (
            "decided_on",
            "2028-03-01",
            "fields.decided_on",
            "R-DATA-4",
            "after today",
        ),
        (
            "decided_on",
            "1949-09-30",
            "fields.decided_on",
            "R-DATA-4",
            "before 1949-10-01",
        ),
        (
            "valid_until",
            "0000-01-01",
            "fields.valid_until",
            "R-DATA-4",
            "before 1949-10-01",
        ),
        (
            "fine_amount",
            "-0.5",
            "fields.fine_amount",
            "R-DATA-4",
            "negative",
        ),
        (
            "occurred_on",
            "0000-01-01",
            "occurred_on",
            "R-DATA-4",
            "before 1949-10-01",
        ),
        ("period", "1900-01", "period", "R-DATA-5", "before 1949-10"),
    ];
    let batch: Vec<pb::Record> = cases
        .iter()
        .enumerate()
        .map(|(i, (key, value, ..))| {
            let mut d = good.clone();
            d.provider_ref = format!("bad-{i}");
            match *key {
                "occurred_on" => d.occurred_on = value.to_string(),
                "period" => d.period = value.to_string(),
                field => {
                    d.fields.insert(field.into(), value.to_string());
                }
            }
            draft_to_wire(&d)
        })
        .collect();
    let r = push_one(&mut amr, batch).await.unwrap();
    assert_eq!(r.accepted, 0, "{r:?}");
    for ((_, _, field, rule, says), outcome) in cases.iter().zip(&r.outcomes) {
        let refusal = outcome.refusal.as_ref().expect("refused");
        assert_eq!(
            (
                Code::from(refusal.code),
                refusal.field.as_str(),
                refusal.rule.as_str()
            ),
            (Code::InvalidArgument, *field, *rule),
            "{refusal:?}"
        );
        assert!(refusal.message.contains(says), "{refusal:?}");
    }
    assert_eq!(n.node.store().fingerprint().unwrap(), fingerprint);
    let logged: Vec<(String, String)> = n
        .usage_after(before)
        .into_iter()
        .filter_map(|e| match e.outcome {
            Outcome::Refused { field, rule, .. } => Some((field, rule)),
            Outcome::Ok => None,
        })
        .collect();
    let expected: Vec<(String, String)> = cases
        .iter()
        .map(|(_, _, f, r, _)| (f.to_string(), r.to_string()))
        .collect();
    assert_eq!(logged, expected);
    // Fields the catalog opens to the future still take one.
    let mut d = good.clone();
    d.provider_ref = "future-ok".into();
    d.fields.insert("publish_until".into(), "2031-02-28".into());
    d.fields.insert("valid_until".into(), "2030-12-31".into());
    let r = push_one(&mut amr, vec![draft_to_wire(&d)]).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");
}

fn grant(from: &str, until: &str) -> pb::GrantRequest {
    pb::GrantRequest {
        subject_id: ID.into(),
        grantee: "credit://agency/211382/lingyuan-bank".into(),
        purpose: "lending".into(),
        purpose_text: "loan application".into(),
        categories: vec!["power".into()],
        valid_from: from.into(),
        valid_until: until.into(),
        evidence: "SQ-2028-0042".into(),
    }
}

#[tokio::test]
async fn a_consent_longer_than_the_configured_term_is_refused_r_rel_4() {
    // A leap day: five years on, February has no 29th.
    let n = Node::start("2028-02-29").await;
    let mut consents =
        pb::consents_client::ConsentsClient::new(n.channel(Role::Operator, "window-1").await);
    let fingerprint = n.node.store().fingerprint().unwrap();
    let before = n.usage_count();
    for (from, until, field) in [
        ("", "2033-03-01", "valid_until"),
        ("2030-01-01", "2035-01-02", "valid_until"),
        // Five years and a day: both the first and the last day count.
        ("2030-01-01", "2035-01-01", "valid_until"),
        ("", "9999-12-31", "valid_until"),
        ("2033-03-01", "2033-06-01", "valid_from"),
    ] {
        let status = consents.grant(grant(from, until)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}:"))
                && status.message().contains("R-REL-4"),
            "{status:?}"
        );
    }
    assert_eq!(n.node.store().fingerprint().unwrap(), fingerprint);
    let logged = n.usage_after(before);
    assert_eq!(logged.len(), 5);
    for e in &logged {
        let Outcome::Refused { rule, .. } = &e.outcome else {
            panic!("not refused: {e:?}");
        };
        assert_eq!(rule, "R-REL-4");
    }
    // Exactly five years is allowed.
    let given = consents
        .grant(grant("", "2033-02-28"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(given.terms.unwrap().valid_until, "2033-02-28");
    let given = consents
        .grant(grant("2030-01-01", "2034-12-31"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(given.terms.unwrap().valid_from, "2030-01-01");
}

#[tokio::test]
async fn a_public_answer_forwarded_through_the_federation_is_masked_r_rel_2() {
    use common::fed::{Fed, holdings};
    let today = "2026-12-31";
    let fed = Fed::start_with_clock(Clock::on(day(today))).await;
    let channel = |node: &NodeHandle, role: Role, id: &str| {
        let identity =
            ClientIdentity::load(&fed.net.identity(role, LINGYUAN, id).unwrap()).unwrap();
        let endpoint = node.endpoint();
        async move {
            connect(&endpoint, &identity, ExpectedServer::AnyNode)
                .await
                .unwrap()
        }
    };
    let mut amr = pb::exchange_client::ExchangeClient::new(
        channel(fed.county(), Role::Provider, "lingyuan-amr").await,
    );
    let r = push_penalty(&mut amr, today).await;
    assert_eq!(r.accepted, 1, "{r:?}");
    let arrived = common::eventually(std::time::Duration::from_secs(20), || async {
        !holdings(fed.province()).is_empty()
    })
    .await;
    assert!(arrived, "the record reached Liaoning");
    let mut anyone = pb::query_client::QueryClient::new(
        channel(fed.county(), Role::Agency, "news-agency").await,
    );
    let answer = anyone
        .query(pb::QueryRequest {
            scope: pb::Scope::Federation as i32,
            ..ask(pb::LegalBasis::Public, "")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.answered_by, "210000");
    assert!(answer.masked);
    assert_eq!(answer.records.len(), 1);
    let all = format!("{:?}", answer.records);
    assert_eq!(identifiers_in(&all), Vec::<&str>::new(), "{all}");
}

#[tokio::test]
async fn a_non_ascii_subject_id_is_refused_and_logged_not_a_panic_r_data_1() {
    let n = Node::start("2026-06-01").await;
    let channel = n.channel(Role::Agency, "news-agency").await;
    let before = n.usage_count();
    // 18 bytes, the 18th inside `é`.
    let subject = "1234567890123456é";
    let status = pb::query_client::QueryClient::new(channel.clone())
        .query(pb::QueryRequest {
            subject_id: subject.into(),
            ..ask(pb::LegalBasis::Public, "")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("subject_id:") && status.message().contains("R-DATA-1"),
        "{status:?}"
    );
    let status =
        pb::consents_client::ConsentsClient::new(n.channel(Role::Operator, "window-1").await)
            .list(pb::ListConsentsRequest {
                subject_id: subject.into(),
            })
            .await
            .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let logged = n.usage_after(before);
    assert_eq!(logged.len(), 2, "{logged:?}");
    for e in &logged {
        let Outcome::Refused { rule, field, .. } = &e.outcome else {
            panic!("not refused: {e:?}");
        };
        assert_eq!((field.as_str(), rule.as_str()), ("subject_id", "R-DATA-1"));
    }
    // The node still answers.
    let ok = pb::query_client::QueryClient::new(channel)
        .query(ask(pb::LegalBasis::Public, ""))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn public_answer_masks_full_width_and_split_ids_and_a_sole_trader_r_rel_2() {
    use credit_node::policy::identifier::uscc_check_char;
    let today = "2026-03-31";
    let n = Node::start(today).await;
    let mut amr = n.amr().await;
    // A person: the id and mobile in full-width digits, split by other separators, in
    // parts; the fine is an ordinary amount.
    let mut person = penalty_naming_everything(today);
    person.fields.insert(
        "facts".into(),
        "当事人身份证２１１３８２１９８００２２９０１３４，电话１３８１２３４５６７８，\
         又记 211382.19800229.0134、211382 198002290134，前六位211382，\
         手机 +86 138 1234 5678 300 元"
            .into(),
    );
    person.provider_ref = "CF-2026-7".into();
    // A sole trader (个体工商户): a legal person whose code and name identify its owner.
    let body = "92211382MA0Y8L6X3";
    let trader = format!("{body}{}", uscc_check_char(body).unwrap());
    let mut shop = penalty_naming_everything(today);
    shop.subject_kind = Some(SubjectKind::Legal);
    shop.subject_id = trader.clone();
    shop.subject_name = "凌源市王建国五金店".into();
    shop.provider_ref = format!("CF-{trader}");
    shop.fields
        .insert("facts".into(), "凌源市王建国五金店无照经营".into());
    shop.fields
        .insert("decision_no".into(), "凌市监罚决〔2026〕8号".into());
    shop.fields.remove("remarks");
    let r = push_one(&mut amr, vec![draft_to_wire(&person), draft_to_wire(&shop)])
        .await
        .unwrap();
    assert_eq!(r.accepted, 2, "{r:?}");

    let public = n
        .query(Role::Agency, "news-agency", ask(pb::LegalBasis::Public, ""))
        .await;
    assert_eq!(public.records.len(), 1);
    let all = format!("{:?}", public.records[0]);
    for secret in [
        "２１１３８２１９８００２２９０１３４",
        "１３８１２３４５６７８",
        "１９８００２２９",
        "19800229",
        "前六位211382",
        "1234 5678",
    ] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    assert!(all.contains("300 元"), "{all}");

    let shop_answer = n
        .query(
            Role::Agency,
            "news-agency",
            pb::QueryRequest {
                subject_id: trader.clone(),
                ..ask(pb::LegalBasis::Public, "")
            },
        )
        .await;
    assert_eq!(shop_answer.records.len(), 1);
    let all = format!("{:?}", shop_answer.records[0]);
    for secret in [trader.as_str(), "凌源市王建国五金店", "MA0Y8L"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    assert_eq!(shop_answer.records[0].fields["fine_amount"], "0.5");
}
