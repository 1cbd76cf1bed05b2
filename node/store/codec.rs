//! Value encoding: one format byte, then postcard. postcard is compact and
//! deterministic, but not self-describing, so a change of any stored type bumps
//! `FORMAT` and keeps a decoder for the old one.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

const FORMAT: u8 = 1;

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT];
    postcard::to_io(value, &mut out).map_err(|e| StoreError::Corrupt {
        what: "encoding",
        detail: e.to_string(),
    })?;
    Ok(out)
}

pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        }),
        Some((other, _)) => Err(StoreError::Corrupt {
            what,
            detail: format!("unknown format byte {other}"),
        }),
        None => Err(StoreError::Corrupt {
            what,
            detail: "empty value".into(),
        }),
    }
}
