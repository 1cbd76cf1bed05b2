//! Record files: JSON Lines or CSV in, JSON Lines out.
//!
//! One record per line (JSON) or row (CSV), with `subject_kind` (`legal` or `natural`),
//! `subject_id`, `subject_name`, `category`, `provider_ref`, `occurred_on` (YYYY-MM-DD),
//! optional `ended_on`, optional `adverse`, and `fields` (a JSON object; in CSV, one
//! `fields.<name>` column per field, an empty cell meaning "not given").

use std::collections::BTreeMap;
use std::io::BufRead;

use serde_json::{Map, Value};

use crate::pb;
use crate::record::{Draft, SubjectKind};

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

/// Longest piece of a line quoted back in a refusal.
const MAX_QUOTED: usize = 64;

/// At most `MAX_QUOTED` characters of `s`, so a huge value is never echoed back whole.
fn quoted(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTED {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_QUOTED).collect();
        out.push('…');
        out
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

/// Reads JSON Lines. Blank lines are skipped; each other line is a record or an error.
pub fn read_json_lines<R: BufRead + Send + 'static>(reader: R, period: &str) -> Lines {
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
                    Err(_) => {
                        let draft = Err(line_error(
                            "(line)",
                            "R-DATA-2",
                            "not UTF-8 text; convert the file from GBK (or its encoding) to UTF-8",
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
                let draft = match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(obj)) => draft_from_json(obj, &period),
                    Ok(_) => Err(line_error(
                        "(line)",
                        "R-DATA-2",
                        "each line must be one JSON object",
                    )),
                    Err(e) => Err(line_error(
                        "(line)",
                        "R-DATA-2",
                        format!("not valid JSON: {e}"),
                    )),
                };
                Some(Ok(Parsed {
                    line: i as u64 + 1,
                    bytes: size,
                    draft,
                }))
            }),
    )
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

const COLUMNS: [&str; 8] = [
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

/// Reads CSV with a header row. Line numbers count the header as line 1.
pub fn read_csv<R: std::io::Read + Send + 'static>(
    reader: R,
    period: &str,
) -> Result<Lines, csv::Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = rdr.headers()?.clone();
    let period = period.to_string();
    let mut last_offset = rdr.position().byte();
    Ok(Box::new(rdr.into_records().map(move |row| {
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
        for (h, v) in headers.iter().zip(row.iter()) {
            if v.is_empty() {
                continue;
            }
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
}
