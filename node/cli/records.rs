//! Record files: JSON Lines or CSV in, JSON Lines out.
//!
//! One record per line (JSON) or row (CSV), with `subject_kind` (`legal` or `natural`),
//! `subject_id`, `subject_name`, `category`, `provider_ref`, `occurred_on` (YYYY-MM-DD),
//! optional `ended_on`, optional `adverse`, and `fields` (a JSON object; in CSV, one
//! `fields.<name>` column per field, an empty cell meaning "not given").
//!
//! Ambiguous input is refused, never guessed: a key given twice on one JSON line, a
//! column named twice in a CSV header, a JSON number that a 64-bit float cannot hold
//! exactly (`1.00000000000000001`, a whole number beyond 64 bits), which would be sent
//! rounded. Text must be UTF-8 (a UTF-8 byte order mark is
//! skipped); a file in GBK or UTF-16 is named as such, with the `iconv` line that
//! converts it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::domain::record::{Draft, SubjectKind};
use crate::pb;
use crate::policy::validate::quoted;

/// A line the client refused before sending: it cannot become a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub field: String,
    pub rule: &'static str,
    pub message: String,
}

/// One parsed line: its 1-based line number, the bytes it took (for progress), and the
/// draft or why it is not one.
#[derive(Debug)]
pub struct Parsed {
    pub line: u64,
    pub bytes: u64,
    pub draft: Result<Draft, LineError>,
}

/// Lines of a record file, read lazily so a file of any size streams.
pub type Lines = Box<dyn Iterator<Item = std::io::Result<Parsed>> + Send>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

impl Format {
    /// `.csv` is CSV; anything else is read as JSON Lines.
    pub fn of_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::JsonLines,
        }
    }
}

/// A refusal of one line. The field is a column or key the file itself names, so it is
/// quoted in part, and an empty name (a CSV header cell left blank, a `""` key) is
/// named as such: a refusal always says which field.
fn line_error(field: &str, rule: &'static str, message: impl Into<String>) -> LineError {
    let field = match field {
        "" => "(unnamed column)".to_string(),
        "fields." => "fields.(unnamed)".to_string(),
        named => quoted(named),
    };
    LineError {
        field,
        rule,
        message: message.into(),
    }
}

/// The UTF-8 byte order mark, which Windows tools put at the start of "UTF-8" files.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether the first bytes of a file look like UTF-16: a UTF-16 byte order mark, or NUL
/// bytes all in the even or all in the odd positions (ASCII text in UTF-16 without one).
pub fn looks_like_utf16(head: &[u8]) -> bool {
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return true;
    }
    let head = &head[..head.len().min(64)];
    let nul_at = |parity: usize| {
        head.iter()
            .enumerate()
            .filter(|&(i, &b)| b == 0 && i % 2 == parity)
            .count()
    };
    let (even, odd) = (nul_at(0), nul_at(1));
    (even >= 2 && odd == 0) || (odd >= 2 && even == 0)
}

/// Whether bytes that are not UTF-8 read as GBK (GB 2312 / GB 18030 two-byte form):
/// ASCII, or a lead byte 0x81-0xFE followed by a trail byte 0x40-0xFE other than 0x7F.
pub fn looks_like_gbk(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x00..=0x7F => i += 1,
            0x81..=0xFE => match bytes.get(i + 1) {
                Some(&t) if (0x40..=0xFE).contains(&t) && t != 0x7F => i += 2,
                _ => return false,
            },
            _ => return false,
        }
    }
    true
}

/// What to tell a provider whose text is not UTF-8, naming the encoding it looks like.
pub fn encoding_hint(bytes: &[u8]) -> String {
    if looks_like_utf16(bytes) {
        "not UTF-8 text: this looks like UTF-16; convert with iconv -f UTF-16 -t UTF-8".into()
    } else if looks_like_gbk(bytes) {
        "not UTF-8 text: this looks like GBK; convert with iconv -f GBK -t UTF-8".into()
    } else {
        "not UTF-8 text; convert the file to UTF-8 (iconv -f <its encoding> -t UTF-8)".into()
    }
}

/// Skips a UTF-8 byte order mark at the start of `reader`; returns whether the file looks
/// like UTF-16 instead.
fn sniff<R: BufRead>(reader: &mut R) -> std::io::Result<bool> {
    let head = reader.fill_buf()?;
    if head.starts_with(UTF8_BOM) {
        reader.consume(UTF8_BOM.len());
        return Ok(false);
    }
    Ok(looks_like_utf16(head))
}

/// A file refused as a whole, reported as one error on its first line.
fn whole_file_error(field: &str, message: String) -> Lines {
    Box::new(std::iter::once(Ok(Parsed {
        line: 1,
        bytes: 0,
        draft: Err(line_error(field, "R-DATA-2", message)),
    })))
}

/// Reads JSON Lines. Blank lines are skipped; each other line is a record or an error.
/// A leading UTF-8 byte order mark is skipped; a UTF-16 file is refused as a whole.
pub fn read_json_lines<R: BufRead + Send + 'static>(mut reader: R, period: &str) -> Lines {
    match sniff(&mut reader) {
        Ok(false) => {}
        Ok(true) => {
            return whole_file_error("(file)", encoding_hint(b"\xFF\xFE"));
        }
        Err(e) => return Box::new(std::iter::once(Err(e))),
    }
    let period = period.to_string();
    Box::new(
        reader
            .split(b'\n')
            .enumerate()
            .filter_map(move |(i, bytes)| {
                let bytes = match bytes {
                    Ok(bytes) => bytes,
                    Err(e) => return Some(Err(e)),
                };
                let size = bytes.len() as u64 + 1;
                // A line in another encoding (GBK exports are common) is refused on its own,
                // not the whole file.
                let line = match String::from_utf8(bytes) {
                    Ok(line) => line,
                    Err(e) => {
                        let draft = Err(line_error(
                            "(line)",
                            "R-DATA-2",
                            encoding_hint(e.as_bytes()),
                        ));
                        return Some(Ok(Parsed {
                            line: i as u64 + 1,
                            bytes: size,
                            draft,
                        }));
                    }
                };
                let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
                if line.trim().is_empty() {
                    return None;
                }
                let draft = match parse_strict(&line) {
                    Ok(Value::Object(obj)) => draft_from_json(obj, &period),
                    Ok(_) => Err(line_error(
                        "(line)",
                        "R-DATA-2",
                        "each line must be one JSON object",
                    )),
                    Err(e) => Err(e),
                };
                Some(Ok(Parsed {
                    line: i as u64 + 1,
                    bytes: size,
                    draft,
                }))
            }),
    )
}

/// Parses one JSON value, refusing an object that names a key twice: `serde_json::Value`
/// keeps the last value silently, and which one the provider meant is a guess.
fn parse_strict(line: &str) -> Result<Value, LineError> {
    let duplicate = RefCell::new(None);
    let numbers = RefCell::new(Numbers {
        literals: number_literals(line).into_iter(),
        inexact: None,
    });
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = Strict {
        path: String::new(),
        duplicate: &duplicate,
        numbers: &numbers,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    let inexact = numbers.into_inner().inexact;
    match (parsed, duplicate.into_inner(), inexact) {
        (_, Some(key), _) => Err(line_error(
            &key,
            "R-DATA-2",
            format!("the key {key:?} is given twice on this line; give it once"),
        )),
        (Ok(_), None, Some((key, literal))) => Err(line_error(
            &key,
            "R-DATA-2",
            format!(
                "the number {literal} cannot be kept exactly (more digits than a 64-bit float holds); give it as a string, e.g. \"{literal}\""
            ),
        )),
        (Ok(v), None, None) => Ok(v),
        (Err(e), None, _) => Err(line_error(
            "(line)",
            "R-DATA-2",
            format!("not valid JSON: {e}"),
        )),
    }
}

/// A `serde_json::Value` built by hand so that a repeated key is seen; `path` names where
/// in the line the value is (`fields.fine_amount`), and `duplicate` gets the first
/// repeated key's path.
struct Strict<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
    numbers: &'a RefCell<Numbers>,
}

/// The number literals of a line in order (serde_json visits numbers in the same order),
/// and the first one that did not survive the conversion to `f64`, with its path.
struct Numbers {
    literals: std::vec::IntoIter<String>,
    inexact: Option<(String, String)>,
}

impl Strict<'_> {
    fn child(&self, name: &str) -> Self {
        Strict {
            path: if self.path.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", self.path)
            },
            duplicate: self.duplicate,
            numbers: self.numbers,
        }
    }

    /// Takes this number's literal; for a float, records it when `v` is not exactly it.
    fn number(&self, float: Option<f64>) {
        let mut numbers = self.numbers.borrow_mut();
        let literal = numbers.literals.next();
        if let (Some(v), Some(literal)) = (float, literal)
            && numbers.inexact.is_none()
            && decimal(&literal) != decimal(&format!("{v:e}"))
        {
            numbers.inexact = Some((self.path.clone(), literal));
        }
    }
}

/// The number literals outside strings in a JSON text, in order.
fn number_literals(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                out.push(text[start..i].to_string());
            }
            _ => i += 1,
        }
    }
    out
}

/// A decimal number as (negative, significant digits, exponent of the first digit), so
/// that `1.50`, `15e-1` and `1.5e0` compare equal; zero is (false, "", 0).
fn decimal(literal: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = exponent
        .checked_add(int.len() as i64)?
        .checked_sub(lead as i64)?;
    Some((negative, significant.to_string(), point))
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        self.number(None);
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        self.number(None);
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        self.number(Some(v));
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child(&format!("[{}]", items.len())))? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if obj.contains_key(&key) {
                let message = format!("duplicate key {:?}", child.path);
                *self.duplicate.borrow_mut() = Some(child.path);
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(child)?;
            obj.insert(key, value);
        }
        Ok(Value::Object(obj))
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn subject_kind(s: &str) -> Result<SubjectKind, LineError> {
    match s.trim() {
        "legal" => Ok(SubjectKind::Legal),
        "natural" => Ok(SubjectKind::Natural),
        other => Err(line_error(
            "subject_kind",
            "R-DATA-1",
            format!("must be \"legal\" or \"natural\", got {:?}", quoted(other)),
        )),
    }
}

fn adverse(s: &str) -> Result<bool, LineError> {
    match s.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(line_error(
            "adverse",
            "R-DATA-2",
            format!("must be true or false, got {:?}", quoted(other)),
        )),
    }
}

/// The fixed columns of a records CSV, before the `fields.*` ones.
pub(crate) const COLUMNS: [&str; 8] = [
    "subject_kind",
    "subject_id",
    "subject_name",
    "category",
    "provider_ref",
    "occurred_on",
    "ended_on",
    "adverse",
];

fn draft_from_json(mut obj: Map<String, Value>, period: &str) -> Result<Draft, LineError> {
    let mut draft = Draft {
        period: period.to_string(),
        ..Draft::default()
    };
    match obj.remove("fields") {
        Some(Value::Object(fields)) => {
            for (k, v) in fields {
                if v.is_null() {
                    continue;
                }
                let t = text(&v).ok_or_else(|| {
                    line_error(
                        &format!("fields.{k}"),
                        "R-DATA-2",
                        "must be a string, number or boolean",
                    )
                })?;
                draft.fields.insert(k, t);
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(line_error("fields", "R-DATA-2", "must be a JSON object")),
    }
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let t = text(&v)
            .ok_or_else(|| line_error(&k, "R-DATA-2", "must be a string, number or boolean"))?;
        set_column(&mut draft, &k, t)?;
    }
    Ok(draft)
}

fn set_column(draft: &mut Draft, column: &str, value: String) -> Result<(), LineError> {
    match column {
        "subject_kind" => draft.subject_kind = Some(subject_kind(&value)?),
        "subject_id" => draft.subject_id = value,
        "subject_name" => draft.subject_name = value,
        "category" => draft.category = value,
        "provider_ref" => draft.provider_ref = value,
        "occurred_on" => draft.occurred_on = value,
        "ended_on" => draft.ended_on = Some(value),
        "adverse" => draft.adverse = Some(adverse(&value)?),
        other => {
            return Err(line_error(
                other,
                "R-DATA-2",
                format!(
                    "unknown column; expected one of {} or fields.<name>",
                    COLUMNS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Reads CSV with a header row. Line numbers count the header as line 1. A leading UTF-8
/// byte order mark is skipped; a UTF-16 file, a header that is not UTF-8 or that names a
/// column twice is refused as a whole; a cell that is not UTF-8 refuses its row.
pub fn read_csv<R: std::io::Read + Send + 'static>(
    reader: R,
    period: &str,
) -> Result<Lines, csv::Error> {
    let mut reader = std::io::BufReader::new(reader);
    if sniff(&mut reader)? {
        return Ok(whole_file_error("(file)", encoding_hint(b"\xFF\xFE")));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let mut headers = Vec::new();
    let mut seen = HashSet::new();
    for raw in rdr.byte_headers()?.iter() {
        let Ok(h) = std::str::from_utf8(raw) else {
            return Ok(whole_file_error("(header)", encoding_hint(raw)));
        };
        if !seen.insert(h.to_string()) {
            return Ok(whole_file_error(
                h,
                format!("the header names the column {h:?} twice; which one is meant is ambiguous"),
            ));
        }
        headers.push(h.to_string());
    }
    let period = period.to_string();
    let mut last_offset = rdr.position().byte();
    Ok(Box::new(rdr.into_byte_records().map(move |row| {
        let row = match row {
            Ok(row) => row,
            Err(e) if e.is_io_error() => {
                return Err(std::io::Error::other(e.to_string()));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let draft = Err(line_error(
                    "(row)",
                    "R-DATA-2",
                    format!("not a valid CSV row: {e}"),
                ));
                return Ok(Parsed {
                    line,
                    bytes: 0,
                    draft,
                });
            }
        };
        let (line, end) = row
            .position()
            .map_or((0, last_offset), |p| (p.line(), p.byte()));
        let bytes = end.saturating_sub(last_offset);
        last_offset = end;
        let mut draft = Draft {
            period: period.clone(),
            ..Draft::default()
        };
        let mut result = Ok(());
        for (h, raw) in headers.iter().zip(row.iter()) {
            if raw.is_empty() {
                continue;
            }
            let Ok(v) = std::str::from_utf8(raw) else {
                result = Err(line_error(h, "R-DATA-2", encoding_hint(raw)));
                break;
            };
            result = match h.strip_prefix("fields.") {
                Some(name) => {
                    draft.fields.insert(name.to_string(), v.to_string());
                    Ok(())
                }
                None => set_column(&mut draft, h, v.to_string()),
            };
            if result.is_err() {
                break;
            }
        }
        Ok(Parsed {
            line,
            bytes,
            draft: result.map(|()| draft),
        })
    })))
}

/// A draft as one line of a record file (the inverse of `read_json_lines`).
pub fn draft_json(d: &Draft) -> Value {
    let mut obj = Map::new();
    let kind = match d.subject_kind {
        Some(SubjectKind::Legal) => Value::from("legal"),
        Some(SubjectKind::Natural) => Value::from("natural"),
        None => Value::Null,
    };
    obj.insert("subject_kind".into(), kind);
    obj.insert("subject_id".into(), d.subject_id.clone().into());
    obj.insert("subject_name".into(), d.subject_name.clone().into());
    obj.insert("category".into(), d.category.clone().into());
    obj.insert("provider_ref".into(), d.provider_ref.clone().into());
    obj.insert("occurred_on".into(), d.occurred_on.clone().into());
    if let Some(ended) = &d.ended_on {
        obj.insert("ended_on".into(), ended.clone().into());
    }
    if let Some(adverse) = d.adverse {
        obj.insert("adverse".into(), adverse.into());
    }
    obj.insert(
        "fields".into(),
        Value::Object(
            d.fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect(),
        ),
    );
    Value::Object(obj)
}

/// A stored record as one JSON object, using the record-file names where they overlap.
pub fn record_json(r: &pb::Record) -> Value {
    let subject = r.subject.clone().unwrap_or_default();
    let kind = match pb::SubjectKind::try_from(subject.kind) {
        Ok(pb::SubjectKind::Legal) => "legal",
        Ok(pb::SubjectKind::Natural) => "natural",
        _ => "unspecified",
    };
    let disclosure = match pb::DisclosureClass::try_from(r.disclosure) {
        Ok(pb::DisclosureClass::Public) => "public",
        Ok(pb::DisclosureClass::Consent) => "consent",
        Ok(pb::DisclosureClass::Statutory) => "statutory",
        _ => "unspecified",
    };
    let status = match pb::RecordStatus::try_from(r.status) {
        Ok(pb::RecordStatus::Active) => "active",
        Ok(pb::RecordStatus::Suspended) => "suspended",
        Ok(pb::RecordStatus::Expired) => "expired",
        Ok(pb::RecordStatus::Deleted) => "deleted",
        Ok(pb::RecordStatus::Repaired) => "repaired",
        _ => "unspecified",
    };
    let fields: BTreeMap<&String, &String> = r.fields.iter().collect();
    let reported_at = chrono::DateTime::from_timestamp_millis(r.reported_at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    serde_json::json!({
        "id": r.id,
        "subject_kind": kind,
        "subject_id": subject.id,
        "subject_name": subject.name,
        "category": r.category,
        "provider_id": r.provider_id,
        "provider_ref": r.provider_ref,
        "occurred_on": r.occurred_on,
        "ended_on": if r.ended_on.is_empty() { Value::Null } else { Value::String(r.ended_on.clone()) },
        "adverse": r.adverse,
        "period": r.period,
        "disclosure": disclosure,
        "status": status,
        "status_reason": r.status_reason,
        "version": r.version,
        "origin_region": r.origin_region,
        "path": r.path,
        "reported_at": reported_at,
        "content_hash": r.content_hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "fields": fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_with_numbers_and_errors() {
        let input = concat!(
            r#"{"subject_kind":"legal","subject_id":"91211382MA0000000X","subject_name":"某公司","category":"admin_penalty","provider_ref":"凌市监罚〔2026〕12号","occurred_on":"2026-03-01","adverse":true,"fields":{"fine_amount":1.5,"decision_no":"凌市监罚〔2026〕12号"}}"#,
            "\n\n",
            "not json\n",
            r#"{"subject_kind":"company"}"#,
            "\n",
            r#"{"subject_kind":"legal","colour":"red"}"#,
            "\n",
            r#"{"subject_kind":"legal","fields":"oops"}"#,
            "\r\n",
        );
        let mut bytes = input.as_bytes().to_vec();
        bytes.extend_from_slice(b"{\"subject_name\":\"\xd5\xc5\xc8\xfd\"}\n"); // GBK for 张三
        let parsed: Vec<Parsed> = read_json_lines(std::io::Cursor::new(bytes), "2026-03")
            .map(Result::unwrap)
            .collect();
        assert_eq!(parsed.len(), 6);
        assert_eq!(parsed[4].draft.as_ref().unwrap_err().field, "fields");
        assert!(
            parsed[5]
                .draft
                .as_ref()
                .unwrap_err()
                .message
                .contains("UTF-8")
        );
        assert_eq!(parsed[5].line, 7);
        let Ok(d) = &parsed[0].draft else { panic!() };
        assert_eq!(parsed[0].line, 1);
        assert_eq!(d.fields["fine_amount"], "1.5");
        assert_eq!(d.adverse, Some(true));
        assert_eq!(d.period, "2026-03");
        assert_eq!(parsed[1].line, 3);
        assert_eq!(parsed[1].draft.as_ref().unwrap_err().field, "(line)");
        assert_eq!(parsed[2].draft.as_ref().unwrap_err().field, "subject_kind");
        assert_eq!(parsed[3].draft.as_ref().unwrap_err().field, "colour");
    }

    #[test]
    fn a_json_number_a_float_cannot_hold_exactly_is_refused_naming_the_key_r_data_2() {
        let line = |fine: &str| {
            format!(
                r#"{{"subject_kind":"legal","subject_id":"91211382MA0000000X","subject_name":"某公司","category":"admin_penalty","provider_ref":"P-1","occurred_on":"2026-03-01","fields":{{"note":"1.00000000000000001 -2","fine_amount":{fine}}}}}"#
            )
        };
        for fine in [
            "1.00000000000000001",
            "123456789012345678901234",
            "-99999999999999999999",
        ] {
            let err = parse_strict(&line(fine)).unwrap_err();
            assert_eq!(err.field, "fields.fine_amount", "{fine}: {err:?}");
            assert_eq!(err.rule, "R-DATA-2");
            assert!(err.message.contains(fine), "{fine}: {err:?}");
        }
        for fine in [
            "1.5", "1.50", "15e-1", "0.1", "-0.0", "200000", "-3", "1e2", "0",
        ] {
            assert!(parse_strict(&line(fine)).is_ok(), "{fine}");
        }
        assert_eq!(
            number_literals(r#"{"a":"x\"1","b":[-1.5e3,2],"c":true}"#),
            ["-1.5e3", "2"]
        );
    }

    #[test]
    fn a_written_draft_reads_back_the_same() {
        let catalog = crate::policy::Catalog::builtin().unwrap();
        let drafts = crate::policy::sample::generate_drafts(&catalog, 50, 20, 3, "2026-03");
        let text: String = drafts
            .iter()
            .map(|d| format!("{}\n", draft_json(d)))
            .collect();
        let back: Vec<Draft> = read_json_lines(std::io::Cursor::new(text.into_bytes()), "2026-03")
            .map(|p| p.unwrap().draft.unwrap())
            .collect();
        assert_eq!(back, drafts);
    }

    #[test]
    fn csv_with_field_columns() {
        let input = "subject_kind,subject_id,subject_name,category,provider_ref,occurred_on,ended_on,fields.meter_no,fields.arrears_months\n\
                     natural,211382198002290134,张三,power,P-1,2026-03-01,,M-1,3\n\
                     natural,211382198002290134,张三,power,P-2,2026-03-02,2026-03-05,M-1,\n";
        let parsed: Vec<Parsed> =
            read_csv(std::io::Cursor::new(input.as_bytes().to_vec()), "2026-03")
                .unwrap()
                .map(Result::unwrap)
                .collect();
        assert_eq!(parsed.len(), 2);
        let Ok(d) = &parsed[0].draft else {
            panic!("{parsed:?}")
        };
        assert_eq!(parsed[0].line, 2);
        assert_eq!(d.ended_on, None);
        assert_eq!(d.fields["arrears_months"], "3");
        let Ok(d) = &parsed[1].draft else { panic!() };
        assert_eq!(d.ended_on.as_deref(), Some("2026-03-05"));
        assert!(!d.fields.contains_key("arrears_months"));
    }

    fn one(parsed: Lines) -> Parsed {
        let mut all: Vec<Parsed> = parsed.map(Result::unwrap).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    const LINE: &str = r#"{"subject_kind":"natural","subject_id":"211382198002290134","subject_name":"张三","category":"power","provider_ref":"P-1","occurred_on":"2026-03-01","fields":{"meter_no":"M-1"}}"#;

    #[test]
    fn a_key_given_twice_on_a_json_line_is_refused_naming_it() {
        let twice_top = LINE.replace(
            r#""subject_name":"张三""#,
            r#""subject_name":"张三","subject_name":"李四""#,
        );
        let twice_field = LINE.replace(
            r#""meter_no":"M-1""#,
            r#""meter_no":"M-1","meter_no":"M-2""#,
        );
        for (text, key) in [
            (twice_top, "subject_name"),
            (twice_field, "fields.meter_no"),
        ] {
            let p = one(read_json_lines(
                std::io::Cursor::new(format!("\n{text}\n").into_bytes()),
                "2026-03",
            ));
            let e = p.draft.unwrap_err();
            assert_eq!(p.line, 2);
            assert_eq!(e.field, key);
            assert!(e.message.contains("twice"), "{e:?}");
        }
        // The same key in two different objects is not a repetition.
        let p = one(read_json_lines(
            std::io::Cursor::new(LINE.as_bytes().to_vec()),
            "2026-03",
        ));
        assert_eq!(p.draft.unwrap().subject_name, "张三");
    }

    #[test]
    fn a_utf8_bom_is_skipped_in_json_lines_and_csv() {
        let mut bytes = UTF8_BOM.to_vec();
        bytes.extend_from_slice(LINE.as_bytes());
        let p = one(read_json_lines(std::io::Cursor::new(bytes), "2026-03"));
        assert_eq!(p.draft.unwrap().subject_kind, Some(SubjectKind::Natural));
        let mut bytes = UTF8_BOM.to_vec();
        bytes.extend_from_slice(b"subject_kind,subject_id\nnatural,211382198002290134\n");
        let p = one(read_csv(std::io::Cursor::new(bytes), "2026-03").unwrap());
        assert_eq!(p.draft.unwrap().subject_kind, Some(SubjectKind::Natural));
    }

    #[test]
    fn gbk_and_utf16_files_are_named_with_the_iconv_line() {
        // GBK for 张三 in a CSV cell.
        let csv = b"subject_kind,subject_name\nnatural,\xd5\xc5\xc8\xfd\n".to_vec();
        let p = one(read_csv(std::io::Cursor::new(csv), "2026-03").unwrap());
        let e = p.draft.unwrap_err();
        assert_eq!(e.field, "subject_name");
        assert!(e.message.contains("iconv -f GBK -t UTF-8"), "{e:?}");
        let json = b"{\"subject_name\":\"\xd5\xc5\xc8\xfd\"}\n".to_vec();
        let e = one(read_json_lines(std::io::Cursor::new(json), "2026-03"))
            .draft
            .unwrap_err();
        assert!(e.message.contains("iconv -f GBK -t UTF-8"), "{e:?}");
        // UTF-16 with a byte order mark, and without one (NUL-interleaved ASCII).
        let utf16 = |bom: bool| {
            let mut b = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
            for u in "subject_kind,subject_id\n".encode_utf16() {
                b.extend_from_slice(&u.to_le_bytes());
            }
            b
        };
        for bom in [true, false] {
            let e = one(read_csv(std::io::Cursor::new(utf16(bom)), "2026-03").unwrap())
                .draft
                .unwrap_err();
            assert!(e.message.contains("iconv -f UTF-16 -t UTF-8"), "{e:?}");
            let e = one(read_json_lines(std::io::Cursor::new(utf16(bom)), "2026-03"))
                .draft
                .unwrap_err();
            assert!(e.message.contains("iconv -f UTF-16 -t UTF-8"), "{e:?}");
        }
    }

    #[test]
    fn a_csv_column_named_twice_is_refused() {
        let csv = b"subject_kind,subject_id,subject_id\nnatural,1,2\n".to_vec();
        let e = one(read_csv(std::io::Cursor::new(csv), "2026-03").unwrap())
            .draft
            .unwrap_err();
        assert_eq!(e.field, "subject_id");
    }
}
