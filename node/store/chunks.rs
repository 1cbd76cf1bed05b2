//! The changelog's chunks: consecutive entries stored under their first sequence.

use super::codec::{self, decode, encode};
use super::{Change, StoreError};
use crate::domain::record::Record;

/// Largest encoded changelog chunk (one record larger than this gets a chunk of its own).
pub(super) const CHUNK_BYTES: usize = 64 * 1024;

/// postcard's variant index of each `Change` (one byte for these).
pub(super) const TAG_RECORD: u8 = 0;
pub(super) const TAG_CONSENT: u8 = 1;
pub(super) const TAG_CHECKPOINT: u8 = 2;
pub(super) const TAG_OBJECTION: u8 = 3;

impl Change {
    pub(super) fn tag_and_value(&self) -> Result<(u8, Vec<u8>), StoreError> {
        Ok(match self {
            Change::Record(r) => (TAG_RECORD, encode(r)?),
            Change::Consent(c) => (TAG_CONSENT, encode(c)?),
            Change::Checkpoint(c) => (TAG_CHECKPOINT, encode(c)?),
            Change::Objection(c) => (TAG_OBJECTION, encode(c)?),
        })
    }
}

/// Splits the versions a batch wrote (each as `encode` made it for the records tree)
/// into changelog chunks of at most `CHUNK_BYTES`, each with its first sequence (its
/// key).
///
/// A chunk is what `encode(&Vec<Record>)` would make: the format byte, the count as a
/// postcard varint, then each record's postcard bytes. Built from the bytes already
/// encoded, so no record is serialised twice.
pub(super) fn chunked(first_seq: u64, written: &[(u8, Vec<u8>)]) -> Vec<(u64, Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut chunk_start = first_seq;
    while start < written.len() {
        let mut end = start;
        let mut bytes = 0usize;
        while end < written.len() && (end == start || bytes + written[end].1.len() <= CHUNK_BYTES) {
            bytes += written[end].1.len();
            end += 1;
        }
        let records = &written[start..end];
        chunks.push((chunk_start, chunk_value(records)));
        chunk_start += records.len() as u64;
        start = end;
    }
    chunks
}

/// One chunk's value from entries encoded as `tag_and_value` makes them: the format byte,
/// the count, then each entry's tag and value without its own format byte.
pub(super) fn chunk_value(entries: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let bytes: usize = entries.iter().map(|(_, v)| v.len()).sum();
    let mut value = Vec::with_capacity(bytes + 10);
    value.push(codec::CHANGES_FORMAT);
    codec::push_varint(&mut value, entries.len() as u64);
    for (tag, r) in entries {
        value.push(*tag);
        value.extend_from_slice(&r[1..]);
    }
    value
}

/// One changelog entry from its variant tag and encoding, as `tag_and_value` makes them
/// (`backend::ChangeRun`): for an engine that keeps each entry in a row of its own.
pub(super) fn decode_change(tag: u8, value: &[u8]) -> Result<Change, StoreError> {
    const WHAT: &str = "changelog entry";
    Ok(match tag {
        TAG_RECORD => Change::Record(decode(value, WHAT)?),
        TAG_CONSENT => Change::Consent(decode(value, WHAT)?),
        TAG_CHECKPOINT => Change::Checkpoint(decode(value, WHAT)?),
        TAG_OBJECTION => Change::Objection(decode(value, WHAT)?),
        other => {
            return Err(StoreError::Corrupt {
                what: WHAT,
                detail: format!("unknown variant tag {other}"),
            });
        }
    })
}

/// A changelog chunk: `CHANGES_FORMAT` holds `Change`s; chunks written before consents
/// existed (`FORMAT`) hold records only.
pub(super) fn decode_chunk(bytes: &[u8]) -> Result<Vec<Change>, StoreError> {
    match bytes.first() {
        Some(&codec::CHANGES_FORMAT) => codec::whole(&bytes[1..], "changelog chunk"),
        _ => Ok(decode::<Vec<Record>>(bytes, "changelog chunk")?
            .into_iter()
            .map(Change::Record)
            .collect()),
    }
}
