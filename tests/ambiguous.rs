//! Input that could be read two ways is refused, never guessed (issue 11, item 6): a key
//! given twice in a record file, invisible and bidi-control characters in ids, names and
//! references, a certificate naming two identities, and bytes that are not the protobuf
//! message a method takes. Files in another encoding are named with the `iconv` line.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use common::*;
use credit_node::cli::client::{open_records, push_lines};
use credit_node::domain::caller::{CallerId, Role};
use credit_node::domain::usage::Outcome;
use credit_node::identity::client::{self, ClientIdentity, ExpectedServer};
use credit_node::identity::pki::DevCa;
use credit_node::pb;
use tokio_stream::StreamExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;

/// The reporting period of the generated drafts, so no test here reads the clock itself.
fn period() -> String {
    drafts("admin_penalty", 1, 60)[0].period.clone()
}

/// A record file in `dir`, pushed through the CLI's own reader and client.
async fn push_file(
    t: &TestNode,
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> credit_node::cli::client::PushReport {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let (lines, _) = open_records(&path, &period()).unwrap();
    let channel = t.channel(Role::Provider, LINGYUAN, "lingyuan-amr").await;
    push_lines(channel, lines, 100, |_| {}).await.unwrap()
}

fn json_line(d: &credit_node::domain::record::Draft) -> String {
    credit_node::cli::records::draft_json(d).to_string()
}

#[tokio::test]
async fn a_json_key_given_twice_is_refused_naming_the_key_and_the_line_r_data_2() {
    let t = TestNode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let drafts = drafts("admin_penalty", 2, 61);
    let good = json_line(&drafts[0]);
    // `"subject_name":"X"` repeated with another value: the last one used to win.
    let name = serde_json::to_string(&drafts[1].subject_name).unwrap();
    let twice = json_line(&drafts[1]).replacen(
        &format!("\"subject_name\":{name}"),
        &format!("\"subject_name\":{name},\"subject_name\":\"李四\""),
        1,
    );
    assert_ne!(twice, json_line(&drafts[1]));
    let before = t.fingerprint();
    let report = push_file(
        &t,
        dir.path(),
        "r.jsonl",
        format!("{good}\n{twice}\n").as_bytes(),
    )
    .await;
    assert_eq!(report.created, 1, "{report:?}");
    assert_eq!(report.rejections.len(), 1, "{report:?}");
    let r = &report.rejections[0];
    assert_eq!(
        (r.line, r.field.as_str(), r.rule.as_str()),
        (2, "subject_name", "R-DATA-2")
    );
    assert!(r.message.contains("twice"), "{r:?}");
    assert_ne!(t.fingerprint(), before);
    // Nested in `fields` too.
    let twice_field = json_line(&drafts[1]).replacen(
        "\"fields\":{",
        "\"fields\":{\"facts\":\"a\",\"facts\":\"b\",",
        1,
    );
    let report = push_file(&t, dir.path(), "f.jsonl", twice_field.as_bytes()).await;
    assert_eq!(report.rejections.len(), 1, "{report:?}");
    assert_eq!(report.rejections[0].field, "fields.facts");
}

#[tokio::test]
async fn encodings_a_bom_is_accepted_gbk_and_utf16_are_named_with_iconv() {
    let t = TestNode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let drafts = drafts("admin_penalty", 1, 62);
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(json_line(&drafts[0]).as_bytes());
    let report = push_file(&t, dir.path(), "bom.jsonl", &bom).await;
    assert_eq!((report.created, report.rejected()), (1, 0), "{report:?}");

    // A CSV exported from a Chinese-locale spreadsheet: GBK for 张三.
    let gbk =
        b"subject_kind,subject_id,subject_name\nnatural,211382198002290134,\xd5\xc5\xc8\xfd\n";
    let report = push_file(&t, dir.path(), "gbk.csv", gbk).await;
    assert_eq!(report.rejections.len(), 1, "{report:?}");
    let r = &report.rejections[0];
    assert_eq!((r.line, r.field.as_str()), (2, "subject_name"));
    assert!(
        r.message
            .contains("this looks like GBK; convert with iconv -f GBK -t UTF-8"),
        "{r:?}"
    );

    let mut utf16 = vec![0xFF, 0xFE];
    for unit in format!("{}\n", json_line(&drafts[0])).encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    for name in ["u16.jsonl", "u16.csv"] {
        let report = push_file(&t, dir.path(), name, &utf16).await;
        assert_eq!(report.rejections.len(), 1, "{name}: {report:?}");
        assert!(
            report.rejections[0]
                .message
                .contains("this looks like UTF-16; convert with iconv -f UTF-16 -t UTF-8"),
            "{name}: {report:?}"
        );
    }
}

#[tokio::test]
async fn invisible_and_bidi_characters_in_ids_names_and_references_are_refused() {
    let t = TestNode::start().await;
    let mut amr = t.provider("lingyuan-amr").await;
    let base = drafts("admin_penalty", 5, 63);
    let mut bad = base.clone();
    bad[0].subject_name.push('\u{200B}');
    bad[1].provider_ref.insert(0, '\u{202E}');
    bad[2].subject_id.insert(0, '\u{FEFF}');
    bad[3]
        .fields
        .insert("decision_no".into(), "凌市监罚\u{2066}〔2026〕1号".into());
    let second = bad[4].subject_name.char_indices().nth(1).unwrap().0;
    bad[4].subject_name.insert(second, '\u{200D}');
    let before = t.fingerprint();
    let result = push_one(&mut amr, wire(&bad)).await.unwrap();
    assert_eq!((result.accepted, result.rejected), (0, 5), "{result:?}");
    let expected = [
        ("subject_name", "R-DATA-1", "U+200B"),
        ("provider_ref", "R-DATA-4", "U+202E"),
        ("subject_id", "R-DATA-1", "U+FEFF"),
        ("fields.decision_no", "R-DATA-2", "U+2066"),
        ("subject_name", "R-DATA-1", "U+200D"),
    ];
    for (outcome, (field, rule, char)) in result.outcomes.iter().zip(expected) {
        let refusal = outcome.refusal.as_ref().unwrap();
        assert_eq!(refusal.code, tonic::Code::InvalidArgument as i32);
        assert_eq!(
            (refusal.field.as_str(), refusal.rule.as_str()),
            (field, rule),
            "{refusal:?}"
        );
        assert!(refusal.message.contains(char), "{refusal:?}");
    }
    assert_eq!(t.fingerprint(), before, "nothing refused was stored");
    // The same records without the hidden characters are taken.
    let result = push_one(&mut amr, wire(&base)).await.unwrap();
    assert_eq!(result.accepted, 5, "{result:?}");

    // An objection's evidence is a reference too.
    let channel = t.channel(Role::Operator, LINGYUAN, "ops").await;
    let mut objections = pb::objections_client::ObjectionsClient::new(channel);
    let status = objections
        .file(pb::FileObjection {
            record_id: result.outcomes[0].record_id.clone(),
            reason: "the fine was paid".into(),
            evidence: "凌信异\u{202E}〔2026〕1号".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("evidence") && status.message().contains("U+202E"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_certificate_with_two_identity_uris_is_unauthenticated_r_node_3() {
    let t = TestNode::start().await;
    let ca = DevCa::load(&t.net.ca_dir()).unwrap();
    let ops = CallerId::parse_uri("credit://operator/211382/ops").unwrap();
    // A pull as the operator, with a certificate that carries `extra` beside its URI.
    let pull_with = |extra: &str| {
        let cert = ca.issue_with_extra_uris(&ops, &[extra.into()]).unwrap();
        let (identity, endpoint) = (ClientIdentity::from(&cert), t.endpoint());
        async move {
            let channel = client::connect(&endpoint, &identity, ExpectedServer::AnyNode)
                .await
                .unwrap();
            let mut exchange = pb::exchange_client::ExchangeClient::new(channel);
            pull(&mut exchange, "91211382MA0Y3K1050").await
        }
    };
    let n = t.usage_entries();
    let status = pull_with("credit://node/211300/chaoyang")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("R-NODE-3"), "{status:?}");
    assert!(status.message().contains("2 identity URIs"), "{status:?}");
    assert_eq!(t.usage_entries(), n + 1, "the refusal is logged");
    assert!(matches!(t.last_usage().outcome, Outcome::Refused { .. }));
    // A URI of another scheme beside the identity is not ambiguous.
    pull_with("https://ops.example.org/").await.unwrap();
}

/// Sends and receives raw message bytes, so a test can put anything on the wire.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// A stream that yields one item and then stays open, like a client mid-push.
struct OneThenOpen(Option<Bytes>);

impl tokio_stream::Stream for OneThenOpen {
    type Item = Bytes;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(b)),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_naming_the_message_r_node_2() {
    let t = TestNode::start().await;
    let channel = t.channel(Role::Operator, LINGYUAN, "ops").await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    // Field 1 (subject_id, a string) holding bytes that are not UTF-8; then a length
    // that runs past the end of the message.
    for raw in [&[0x0a, 0x02, 0xc3, 0x28][..], &[0x0a, 0x7f, 0x41]] {
        let n = t.usage_entries();
        grpc.ready().await.unwrap();
        let status = grpc
            .server_streaming(
                tonic::Request::new(Bytes::copy_from_slice(raw)),
                http::uri::PathAndQuery::from_static("/credit.v1.Exchange/PullBySubject"),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("credit.v1.PullRequest"),
            "{status:?}"
        );
        assert!(status.message().contains("R-NODE-2"), "{status:?}");
        // The refusal is in the usage log, with the caller from the certificate.
        let logged = eventually(std::time::Duration::from_secs(10), || async {
            t.usage_entries() == n + 1
        })
        .await;
        assert!(logged, "no usage entry for the refused call");
        let entry = t.last_usage();
        assert_eq!(entry.caller, "credit://operator/211382/ops");
        assert!(
            matches!(&entry.outcome, Outcome::Refused { code, rule, .. } if *code == tonic::Code::InvalidArgument as i32 && rule == "R-NODE-2"),
            "{entry:?}"
        );
    }

    // A push stream whose batch is not a PushBatch: refused, named, and logged.
    let channel = t.channel(Role::Provider, LINGYUAN, "lingyuan-amr").await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let before = t.fingerprint();
    let n = t.usage_entries();
    let mut results = grpc
        .streaming(
            tonic::Request::new(OneThenOpen(Some(Bytes::from_static(&[0x12, 0x05, 0x0a])))),
            http::uri::PathAndQuery::from_static("/credit.v1.Exchange/Push"),
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    let status = results.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("credit.v1.PushBatch"),
        "{status:?}"
    );
    assert_eq!(t.fingerprint(), before);
    assert_eq!(t.usage_entries(), n + 1, "the refused batch is logged");
}

/// Review finding 10: a refusal that only quotes the words of an undecodable-message
/// refusal (here a consent's `valid_until`) is logged once, by its handler, and never
/// as a second, false R-NODE-2 entry; nor does the node's internal mark reach the client.
#[tokio::test]
async fn a_refusal_quoting_the_undecodable_words_is_not_logged_as_r_node_2() {
    let t = TestNode::start().await;
    let channel = t.channel(Role::Operator, LINGYUAN, "ops").await;
    let n = t.usage_entries();
    let status = pb::consents_client::ConsentsClient::new(channel)
        .grant(pb::GrantRequest {
            subject_id: "211382198002290134".into(),
            grantee: "credit://agency/211382/bank".into(),
            purpose: "lending".into(),
            purpose_text: "loan application".into(),
            categories: vec!["power".into()],
            valid_from: String::new(),
            valid_until: "message is not valid protobuf".into(),
            evidence: "SQ-2026-0042".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("valid_until"), "{status:?}");
    assert!(
        status.metadata().get("x-credit-undecodable").is_none(),
        "{status:?}"
    );
    let logged = eventually(std::time::Duration::from_secs(10), || async {
        t.usage_entries() > n
    })
    .await;
    assert!(logged, "the refusal is logged");
    let entries = t.node().store().usage_since(n, 10).unwrap();
    let rules: Vec<String> = entries
        .iter()
        .map(|(_, c)| match &c.entry.outcome {
            Outcome::Refused { rule, .. } => rule.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert!(!rules.iter().any(|r| r == "R-NODE-2"), "{rules:?}");
}
