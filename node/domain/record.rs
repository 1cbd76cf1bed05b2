//! The domain model: 信用记录 (credit records) and 信息主体 (their subjects).
//!
//! These types are what the store keeps and the policy checks; the wire types in
//! `crate::pb` are converted at the edge (`rpc::convert`). Storage never sees
//! protobuf types.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::region::RegionCode;

/// 信息主体 kind (R-DATA-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// 法人和其他组织: identified by a Unified Social Credit Code.
    Legal,
    /// 自然人: identified by a resident identity number.
    Natural,
}

/// 信息主体: the legal or natural person a record is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub kind: SubjectKind,
    /// Normalised (upper case) USCC or resident identity number.
    pub id: String,
    pub name: String,
}

/// How a record may be released (R-REL-1..5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disclosure {
    /// 公开: publicly disclosed.
    Public,
    /// 查询: released on query with the subject's written consent (R-REL-4).
    Consent,
    /// 共享: shared with government bodies for their statutory duty only (R-REL-5).
    Statutory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
    Expired,
    Deleted,
    /// Withdrawn from publication and sharing by credit repair (信用修复).
    Repaired,
}

/// What a provider submits, before the node checks it. Text exactly as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    pub subject_kind: Option<SubjectKind>,
    pub subject_id: String,
    pub subject_name: String,
    pub category: String,
    pub provider_ref: String,
    pub occurred_on: String,
    pub ended_on: Option<String>,
    pub period: String,
    pub adverse: Option<bool>,
    pub fields: BTreeMap<String, String>,
}

/// The checked content of one version of a record: everything the content hash covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub subject: Subject,
    pub category: String,
    pub provider_id: String,
    pub provider_ref: String,
    /// YYYY-MM-DD.
    pub occurred_on: String,
    /// YYYY-MM-DD.
    pub ended_on: Option<String>,
    /// YYYY-MM.
    pub period: String,
    pub adverse: bool,
    pub disclosure: Disclosure,
    pub fields: BTreeMap<String, String>,
}

/// The bytes of a SHA-256 digest.
pub type Hash = [u8; 32];

/// One version of a credit record as a node holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// UUID v7 given by the origin node.
    pub id: Uuid,
    pub content: Content,
    /// The node that first accepted the record; only it changes the record.
    pub origin: RegionCode,
    /// Regions the record passed through, origin first.
    pub path: Vec<RegionCode>,
    /// Unix milliseconds when the origin accepted this version.
    pub reported_at_ms: i64,
    pub version: u64,
    pub status: Status,
    pub status_reason: String,
    pub content_hash: Hash,
}

impl Content {
    /// The draft a provider would send for this content: what a correction starts from,
    /// and what the validator is given again.
    pub fn to_draft(&self) -> Draft {
        Draft {
            subject_kind: Some(self.subject.kind),
            subject_id: self.subject.id.clone(),
            subject_name: self.subject.name.clone(),
            category: self.category.clone(),
            provider_ref: self.provider_ref.clone(),
            occurred_on: self.occurred_on.clone(),
            ended_on: self.ended_on.clone(),
            period: self.period.clone(),
            adverse: Some(self.adverse),
            fields: self.fields.clone(),
        }
    }

    /// SHA-256 over the canonical encoding of the content (`Content::canonical`), so
    /// equal content always hashes equal on every node.
    pub fn hash(&self) -> Hash {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.canonical());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    /// The bytes the content hash covers: postcard's encoding of `Content`, written out
    /// here so that making it has no step that can fail (serde's `Serialize` returns a
    /// `Result`, and a hash must not fall back to anything). Fields go in declaration
    /// order, the map in key order; the destructuring below makes a new field a compile
    /// error until it is encoded. A test holds these bytes equal to postcard's, and the
    /// golden content hash in `store::formats` pins them.
    fn canonical(&self) -> Vec<u8> {
        let Content {
            subject: Subject { kind, id, name },
            category,
            provider_id,
            provider_ref,
            occurred_on,
            ended_on,
            period,
            adverse,
            disclosure,
            fields,
        } = self;
        let mut out = Vec::with_capacity(256);
        // postcard writes a unit variant as its index, in declaration order.
        put_varint(&mut out, *kind as u64);
        put_str(&mut out, id);
        put_str(&mut out, name);
        put_str(&mut out, category);
        put_str(&mut out, provider_id);
        put_str(&mut out, provider_ref);
        put_str(&mut out, occurred_on);
        match ended_on {
            None => out.push(0),
            Some(day) => {
                out.push(1);
                put_str(&mut out, day);
            }
        }
        put_str(&mut out, period);
        out.push(u8::from(*adverse));
        put_varint(&mut out, *disclosure as u64);
        put_varint(&mut out, fields.len() as u64);
        for (key, value) in fields {
            put_str(&mut out, key);
            put_str(&mut out, value);
        }
        out
    }
}

/// postcard's varint: LEB128, seven bits a byte, low bits first.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// postcard's string: its length in bytes as a varint, then the UTF-8 bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Masks an identifier for logs: keeps the first four and last four characters
/// (`2113**********0134`). Personal identifiers never appear in logs unmasked.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let mut out = String::with_capacity(chars.len());
    out.extend(&chars[..4]);
    out.extend(std::iter::repeat_n('*', chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubjectKind::Legal => "legal",
            SubjectKind::Natural => "natural",
        })
    }
}

impl fmt::Display for Disclosure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disclosure::Public => "public",
            Disclosure::Consent => "consent",
            Disclosure::Statutory => "statutory",
        })
    }
}

/// Whether a (normalised) id has an identifier's shape: 1 to 64 ASCII letters and
/// digits. Only such ids become store keys or go into the usage log and its index.
pub fn has_id_shape(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The next version of `cur`, made by its origin at `now_ms`, with `status`.
pub fn next_version(cur: &Record, status: Status, reason: String, now_ms: i64) -> Record {
    Record {
        version: cur.version + 1,
        status,
        status_reason: reason,
        reported_at_ms: now_ms,
        path: vec![cur.origin],
        ..cur.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(ended_on: Option<String>, fields: BTreeMap<String, String>) -> Content {
        Content {
            subject: Subject {
                kind: SubjectKind::Legal,
                id: "91211382MA0Q9X8Y2K".into(),
                name: "凌源市某某有限公司".repeat(9),
            },
            category: "admin_license".into(),
            provider_id: "lingyuan-market".into(),
            provider_ref: "X".repeat(300),
            occurred_on: "2026-05-03".into(),
            ended_on,
            period: "2026-05".into(),
            adverse: false,
            disclosure: Disclosure::Consent,
            fields,
        }
    }

    /// The hand-written encoding is postcard's, byte for byte: the content hash of a
    /// stored record does not change (the golden hash is pinned in `store::formats`).
    /// Long strings take the varint past one byte.
    #[test]
    fn the_canonical_encoding_is_postcards() {
        let many: BTreeMap<String, String> = (0..200)
            .map(|i| (format!("k{i:03}"), "v".repeat(i)))
            .collect();
        for c in [
            content(None, BTreeMap::new()),
            content(Some("2026-06-01".into()), many),
            Content {
                subject: Subject {
                    kind: SubjectKind::Natural,
                    id: String::new(),
                    name: String::new(),
                },
                adverse: true,
                disclosure: Disclosure::Statutory,
                ..content(
                    Some(String::new()),
                    BTreeMap::from([(String::new(), String::new())]),
                )
            },
        ] {
            assert_eq!(c.canonical(), postcard::to_stdvec(&c).unwrap());
        }
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask_id("211382198002290134"), "2113**********0134");
        assert_eq!(mask_id("1234"), "****");
    }
}
