//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` (each a one-liner) and
//! by `tests/fuzz_corpus.rs`, which runs them over their seeds and a bounded number of
//! mutated inputs in `cargo test`.
//!
//! Each body takes arbitrary bytes and panics only when an invariant breaks: input the
//! node reads from providers, from disk or from certificates must give an answer (a
//! value or an error naming the field and the rule), never a panic, and what is accepted
//! must read back the same. `seeds` makes each target's seed corpus from code (sample
//! drafts, the development PKI, sample stored values); no seed is a checked-in binary.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;

use crate::cli::records::{COLUMNS, Parsed, draft_json, read_csv, read_json_lines};
use crate::domain::caller::{CallerId, Role};
use crate::domain::record::{Content, Draft, SubjectKind};
use crate::domain::region::RegionCode;
use crate::policy::catalog::Catalog;
use crate::policy::identifier::{check_resident_id, check_uscc};
use crate::policy::prohibited::prohibited_term;
use crate::policy::sample::generate_drafts;
use crate::policy::validate::{MAX_FIELDS, Validator};

/// The targets, by name: the same names as `fuzz/fuzz_targets/*.rs` and the corpus
/// folders `fuzz/corpus/<name>`.
pub const TARGETS: [&str; 6] = [
    "records_jsonl",
    "records_csv",
    "validate",
    "decode_stored",
    "caller_from_der",
    "caller_from_uri",
];

/// The reporting period the record-file targets read with, and the day they validate on:
/// fixed, so a run never depends on the calendar.
const PERIOD: &str = "2026-05";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).unwrap_or_default()
}

/// Longest refusal message (and field name) a target accepts: refusals quote caller
/// input only in part, so a long input must not come back whole.
const MAX_MESSAGE: usize = 2048;
const MAX_FIELD: usize = 256;

/// Runs the body of `target` on `data`. Unknown names do nothing.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "records_jsonl" => records_jsonl(data),
        "records_csv" => records_csv(data),
        "validate" => validate(data),
        "decode_stored" => decode_stored(data),
        "caller_from_der" => caller_from_der(data),
        "caller_from_uri" => caller_from_uri(data),
        _ => {}
    }
}

/// A USCC on the validator's legacy list: it fails the check character, as such codes do.
const LEGACY_CODE: &str = "91211300MA0Q000000";

struct Fixture {
    validator: Validator,
    drafts: Vec<Draft>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let catalog = Catalog::builtin().unwrap_or_else(|e| panic!("built-in catalog: {e}"));
        let drafts = generate_drafts(&catalog, 48, 24, 11, PERIOD);
        // One legacy code, so the path that skips the identifier check is reachable.
        let legacy = [LEGACY_CODE.to_string()];
        Fixture {
            validator: Validator::new(Arc::new(catalog), legacy),
            drafts,
        }
    })
}

/// A refusal must name a field and cite a rule, and must not echo a long input whole.
fn check_refusal(target: &str, field: &str, rule: &str, message: &str) {
    assert!(
        rule.starts_with("R-"),
        "{target}: refusal cites no rule: {rule:?} ({field}: {message})"
    );
    assert!(
        !field.is_empty(),
        "{target}: refusal names no field: {message}"
    );
    assert!(
        field.chars().count() <= MAX_FIELD && message.chars().count() <= MAX_MESSAGE,
        "{target}: refusal echoes too much input ({} and {} characters)",
        field.chars().count(),
        message.chars().count()
    );
}

/// A draft accepted by a parser must come back unchanged when written as a record-file
/// line (`draft_json`) and read again, and the validator must answer for it.
fn check_parsed(target: &str, parsed: Parsed) {
    match parsed.draft {
        Err(e) => check_refusal(target, &e.field, e.rule, &e.message),
        Ok(draft) => {
            let line = draft_json(&draft).to_string();
            let again: Vec<Parsed> = read_json_lines(Cursor::new(line.into_bytes()), PERIOD)
                .filter_map(Result::ok)
                .collect();
            assert_eq!(
                again.len(),
                1,
                "{target}: a draft written back is not one line"
            );
            match &again[0].draft {
                Ok(d) => assert_eq!(d, &draft, "{target}: a draft changed on the way back"),
                Err(e) => panic!("{target}: a draft written back is refused: {e:?}"),
            }
            validate_draft(target, &draft);
        }
    }
}

/// JSON Lines record files (`cli::records::read_json_lines`).
pub fn records_jsonl(data: &[u8]) {
    let mut last = 0u64;
    for item in read_json_lines(Cursor::new(data.to_vec()), PERIOD) {
        let Ok(parsed) = item else {
            panic!("records_jsonl: an in-memory read failed");
        };
        assert!(
            parsed.line > last,
            "records_jsonl: line numbers go backwards"
        );
        last = parsed.line;
        check_parsed("records_jsonl", parsed);
    }
}

/// CSV record files (`cli::records::read_csv`).
pub fn records_csv(data: &[u8]) {
    let Ok(lines) = read_csv(Cursor::new(data.to_vec()), PERIOD) else {
        return;
    };
    for item in lines {
        // An I/O error from an in-memory reader is csv's report of a bad header or
        // encoding; it ends the file, which the CLI reports.
        let Ok(parsed) = item else {
            return;
        };
        check_parsed("records_csv", parsed);
    }
}

/// `Validator::check` on one draft: a refusal names field and rule; accepted content is
/// a fixed point (its own draft validates to the same content).
fn validate_draft(target: &str, draft: &Draft) {
    let validator = &fixture().validator;
    match validator.check(draft, "tax", today()) {
        Err(v) => check_refusal(target, &v.field, v.rule, &v.message),
        Ok(content) => {
            check_accepted(target, &content);
            let again = validator
                .check(&content.to_draft(), "tax", today())
                .unwrap_or_else(|v| {
                    panic!("{target}: accepted content is refused on a second check: {v:?}")
                });
            assert_eq!(
                again, content,
                "{target}: checking accepted content changes it"
            );
            assert_eq!(again.hash(), content.hash(), "{target}: hash is not stable");
        }
    }
}

/// What accepted content must be, whatever the draft was: no prohibited field about a
/// natural person (R-DATA-3), a subject identifier that passes its check (R-DATA-1) or is
/// on the legacy list, no more fields than allowed, the caller as provider.
fn check_accepted(target: &str, content: &Content) {
    if content.subject.kind == SubjectKind::Natural {
        for name in content.fields.keys() {
            assert!(
                prohibited_term(name).is_none(),
                "{target}: prohibited field {name:?} accepted about a person (R-DATA-3)"
            );
        }
    }
    let id = &content.subject.id;
    let valid = match content.subject.kind {
        SubjectKind::Legal => check_uscc(id).is_ok() || id == LEGACY_CODE,
        SubjectKind::Natural => check_resident_id(id, today()).is_ok(),
    };
    assert!(
        valid,
        "{target}: an invalid identifier was accepted (R-DATA-1): {id:?}"
    );
    assert!(
        content.fields.len() <= MAX_FIELDS,
        "{target}: {} fields accepted",
        content.fields.len()
    );
    assert_eq!(
        content.provider_id, "tax",
        "{target}: provider is not the caller"
    );
}

/// Reads fuzz bytes as a few small choices and strings.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A string of up to 255 bytes (invalid UTF-8 replaced), or up to 4 KiB when the
    /// length byte is 255, so over-long values are reachable.
    fn text(&mut self) -> String {
        let len = match self.byte() {
            Some(255) => usize::from(self.byte().unwrap_or(0)) * 16,
            Some(n) => usize::from(n),
            None => 0,
        };
        let len = len.min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(taken).into_owned()
    }
}

/// Structure-aware `Validator::check`: the first byte picks a valid sample draft, the
/// rest is a list of edits (set a column, add, drop or change a field, change one
/// character of the identifier, take another sample's fields).
pub fn validate(data: &[u8]) {
    let fixture = fixture();
    let mut c = Choices(data);
    let n = fixture.drafts.len();
    let Some(first) = c.byte() else {
        return;
    };
    let mut draft = fixture.drafts[usize::from(first) % n].clone();
    while let Some(op) = c.byte() {
        match op % 14 {
            0 => {
                draft.subject_kind = match c.byte().unwrap_or(0) % 3 {
                    0 => None,
                    1 => Some(SubjectKind::Legal),
                    _ => Some(SubjectKind::Natural),
                }
            }
            1 => draft.subject_id = c.text(),
            2 => draft.subject_name = c.text(),
            3 => draft.category = c.text(),
            4 => draft.provider_ref = c.text(),
            5 => draft.occurred_on = c.text(),
            6 => draft.ended_on = Some(c.text()).filter(|_| op & 0x80 == 0),
            7 => draft.period = c.text(),
            8 => {
                draft.adverse = match c.byte().unwrap_or(0) % 3 {
                    0 => None,
                    1 => Some(false),
                    _ => Some(true),
                }
            }
            9 => {
                let name = c.text();
                let value = c.text();
                draft.fields.insert(name, value);
            }
            10 => {
                let i = usize::from(c.byte().unwrap_or(0));
                if let Some(name) = draft.fields.keys().nth(i % draft.fields.len().max(1)) {
                    let name = name.clone();
                    draft.fields.remove(&name);
                }
            }
            11 => {
                let i = usize::from(c.byte().unwrap_or(0));
                let value = c.text();
                let len = draft.fields.len().max(1);
                if let Some(v) = draft.fields.values_mut().nth(i % len) {
                    *v = value;
                }
            }
            12 => {
                let other = &fixture.drafts[usize::from(c.byte().unwrap_or(0)) % n];
                draft.category = other.category.clone();
                draft.fields = other.fields.clone();
            }
            _ => {
                let at = usize::from(c.byte().unwrap_or(0));
                let with = char::from(c.byte().unwrap_or(b'0'));
                let mut chars: Vec<char> = draft.subject_id.chars().collect();
                if !chars.is_empty() {
                    let i = at % chars.len();
                    chars[i] = with;
                    draft.subject_id = chars.into_iter().collect();
                }
            }
        }
    }
    validate_draft("validate", &draft);
}

/// Every stored value type and changelog chunk, decoded as the store decodes it: the
/// first byte picks the type (`store::fuzz::STORED_KINDS`).
pub fn decode_stored(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    if let Err(broken) = crate::store::fuzz::check_stored(kind, bytes) {
        panic!("decode_stored: {broken}");
    }
}

/// `CallerId` from a client certificate's DER, as `identity::tls::authenticate_peer`
/// reads it: parse the leaf, take its identity URI, parse that.
pub fn caller_from_der(data: &[u8]) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(data) else {
        return;
    };
    let _ = cert.raw_serial();
    let Ok(uri) = crate::identity::tls::identity_uri(&cert) else {
        return;
    };
    check_uri(uri);
}

/// `CallerId::parse_uri` on a SAN URI string.
pub fn caller_from_uri(data: &[u8]) {
    if let Ok(uri) = std::str::from_utf8(data) {
        check_uri(uri);
    }
}

/// A URI that parses names the caller exactly: printing the caller gives the URI back.
fn check_uri(uri: &str) {
    if let Ok(caller) = CallerId::parse_uri(uri) {
        assert_eq!(caller.uri(), uri, "a caller prints as another URI");
        assert_eq!(
            CallerId::parse_uri(&caller.uri()).as_ref(),
            Ok(&caller),
            "a caller's URI parses as another caller"
        );
        assert_eq!(
            RegionCode::parse(caller.region.as_str()),
            Ok(caller.region),
            "a caller's region does not parse"
        );
    }
}

/// The seed corpus of `target`: (file name, bytes), made from code.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "records_jsonl" => jsonl_seeds(),
        "records_csv" => csv_seeds(),
        "validate" => validate_seeds(),
        "decode_stored" => crate::store::fuzz::stored_seeds(),
        "caller_from_der" => der_seeds(),
        "caller_from_uri" => uri_seeds(),
        _ => Vec::new(),
    }
}

fn jsonl_seeds() -> Vec<(String, Vec<u8>)> {
    let drafts = &fixture().drafts;
    let mut out: Vec<(String, Vec<u8>)> = drafts
        .iter()
        .take(12)
        .enumerate()
        .map(|(i, d)| {
            (
                format!("draft-{i}"),
                format!("{}\n", draft_json(d)).into_bytes(),
            )
        })
        .collect();
    let many: String = drafts
        .iter()
        .map(|d| format!("{}\r\n", draft_json(d)))
        .collect();
    out.push(("many-crlf".into(), many.into_bytes()));
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(draft_json(&drafts[0]).to_string().as_bytes());
    out.push(("bom".into(), bom));
    out.push((
        "odd-values".into(),
        br#"{"subject_kind":"legal","subject_id":91211300MA0Q00000X,"adverse":"yes","fields":{"amount":12.5,"n":null,"b":true}}
[1,2]

{"fields":[]}
{"subject_kind":"natural","subject_kind":"legal"}
"#
        .to_vec(),
    ));
    out.push(("gbk".into(), vec![0xD5, 0xC5, 0xC8, 0xFD, b'\n']));
    out
}

fn csv_seeds() -> Vec<(String, Vec<u8>)> {
    let drafts = &fixture().drafts;
    let mut names: Vec<&String> = drafts.iter().flat_map(|d| d.fields.keys()).collect();
    names.sort();
    names.dedup();
    let mut header = COLUMNS.into_iter().map(String::from).collect::<Vec<_>>();
    header.extend(names.iter().map(|n| format!("fields.{n}")));
    let row = |d: &Draft| -> Vec<String> {
        let kind = match d.subject_kind {
            Some(SubjectKind::Legal) => "legal",
            Some(SubjectKind::Natural) => "natural",
            None => "",
        };
        let mut cells = vec![
            kind.to_string(),
            d.subject_id.clone(),
            d.subject_name.clone(),
            d.category.clone(),
            d.provider_ref.clone(),
            d.occurred_on.clone(),
            d.ended_on.clone().unwrap_or_default(),
            d.adverse.map(|a| a.to_string()).unwrap_or_default(),
        ];
        cells.extend(
            names
                .iter()
                .map(|n| d.fields.get(*n).cloned().unwrap_or_default()),
        );
        cells
    };
    let write = |rows: &[&Draft]| -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut ok = w.write_record(&header).is_ok();
        for d in rows {
            ok &= w.write_record(row(d)).is_ok();
        }
        match (ok, w.into_inner()) {
            (true, Ok(bytes)) => bytes,
            _ => Vec::new(),
        }
    };
    let mut out: Vec<(String, Vec<u8>)> = drafts
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, d)| (format!("draft-{i}"), write(&[d])))
        .collect();
    let all: Vec<&Draft> = drafts.iter().collect();
    out.push(("many".into(), write(&all)));
    out.push((
        "quoted".into(),
        b"subject_kind,subject_id,fields.note\r\nlegal,\"91211300MA0Q00000X\",\"a \"\"quoted\"\", multi\nline\"\nnatural,1,2,3\n"
            .to_vec(),
    ));
    out
}

fn validate_seeds() -> Vec<(String, Vec<u8>)> {
    let n = fixture().drafts.len() as u8;
    let mut out: Vec<(String, Vec<u8>)> =
        (0..n).map(|i| (format!("sample-{i}"), vec![i])).collect();
    let edits: [(&str, Vec<u8>); 7] = [
        ("future-date", [&[0u8, 5, 10][..], b"2099-01-01"].concat()),
        ("ended-before", [&[1u8, 6, 10][..], b"2000-01-01"].concat()),
        ("bad-check-char", vec![2, 13, 17, b'X']),
        (
            "prohibited-field",
            [&[3u8, 9, 8][..], b"religion", &[3], b"any"].concat(),
        ),
        ("other-fields", vec![4, 12, 7]),
        ("drop-field", vec![5, 10, 0, 10, 0]),
        ("kind-flip", vec![6, 0, 1, 0, 2]),
    ];
    out.extend(
        edits
            .into_iter()
            .map(|(name, bytes)| (name.to_string(), bytes)),
    );
    out
}

fn der_seeds() -> Vec<(String, Vec<u8>)> {
    use crate::identity::pki::DevCa;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut out = Vec::new();
    let Ok(ca) = DevCa::generate("fuzz seed CA") else {
        return out;
    };
    out.push(("ca".into(), ca.cert_der().to_vec()));
    let region = |s| RegionCode::parse(s).unwrap_or_else(|e| panic!("{e}"));
    let callers = [
        CallerId::new(Role::Node, region("211300"), "chaoyang"),
        CallerId::new(Role::Provider, region("211382"), "lingyuan-tax"),
        CallerId::new(Role::Agency, region("210000"), "bank.1"),
        CallerId::new(Role::Operator, region("211300"), "op_1"),
    ];
    for caller in &callers {
        let Ok(issued) = ca.issue(caller, &["node.example".to_string()]) else {
            continue;
        };
        if let Ok(der) = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()) {
            out.push((format!("{}", caller.role), der.to_vec()));
        }
    }
    for (name, uris) in [
        (
            "two-uris",
            &["credit://node/211300/a", "credit://node/220000/b"][..],
        ),
        ("foreign-uri", &["spiffe://cluster/ns/x"][..]),
        ("bad-region", &["credit://node/991300/a"][..]),
    ] {
        if let Some(der) = self_signed_with_uris(uris) {
            out.push((name.to_string(), der));
        }
    }
    out
}

fn self_signed_with_uris(uris: &[&str]) -> Option<Vec<u8>> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).ok()?;
    for uri in uris {
        let uri = rcgen::string::Ia5String::try_from(uri.to_string()).ok()?;
        params.subject_alt_names.push(rcgen::SanType::URI(uri));
    }
    let key = rcgen::KeyPair::generate().ok()?;
    let cert = params.self_signed(&key).ok()?;
    Some(cert.der().to_vec())
}

fn uri_seeds() -> Vec<(String, Vec<u8>)> {
    [
        "credit://node/211300/chaoyang",
        "credit://provider/211382/lingyuan-tax",
        "credit://agency/210000/bank.1",
        "credit://operator/211300/op_1",
        "credit://node/211300/",
        "credit://node/2113/x",
        "credit://auditor/211300/x",
        "credit://node/211300/a/b",
        "credit://node/２１１３００/x",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| (format!("uri-{i}"), s.as_bytes().to_vec()))
    .collect()
}
