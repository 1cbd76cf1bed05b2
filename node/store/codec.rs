//! Value encoding: one format byte, then postcard. postcard is compact and
//! deterministic, but not self-describing, so a change of any stored type bumps
//! `FORMAT` and keeps a decoder for the old one.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

pub(super) const FORMAT: u8 = 1;
/// A changelog chunk of `Change`s: this byte, the count, then each change's postcard.
pub(super) const CHANGES_FORMAT: u8 = 2;

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT];
    postcard::to_io(value, &mut out).map_err(|e| StoreError::Corrupt {
        what: "encoding",
        detail: e.to_string(),
    })?;
    Ok(out)
}

/// An entry that cannot be hashed into the usage chain cannot be stored either: the same
/// error as a value `encode` refuses.
impl From<crate::domain::usage::EncodeError> for StoreError {
    fn from(e: crate::domain::usage::EncodeError) -> Self {
        StoreError::Corrupt {
            what: "encoding",
            detail: e.to_string(),
        }
    }
}

pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => whole(rest, what),
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

/// Decodes postcard that must fill `bytes` exactly. postcard's `from_bytes` ignores what
/// follows a value, so a damaged value with bytes after it would pass as whole (R-SEC-1).
pub(super) fn whole<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(StoreError::Corrupt {
            what,
            detail: format!("{} bytes after the value", rest.len()),
        }),
        Err(e) => Err(StoreError::Corrupt {
            what,
            detail: e.to_string(),
        }),
    }
}

/// Appends `n` as postcard writes a length: LEB128, seven bits a byte, low bits first.
pub(super) fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk assembled from encoded records decodes as the `Vec` postcard would make.
    #[test]
    fn a_sequence_built_by_hand_decodes_like_postcards_own() {
        for n in [0usize, 1, 127, 128, 300] {
            let items: Vec<String> = (0..n).map(|i| format!("record {i}")).collect();
            let mut built = vec![FORMAT];
            push_varint(&mut built, n as u64);
            for item in &items {
                built.extend_from_slice(&encode(item).unwrap()[1..]);
            }
            assert_eq!(built, encode(&items).unwrap(), "n = {n}");
            assert_eq!(decode::<Vec<String>>(&built, "test").unwrap(), items);
        }
    }

    /// Found by the `decode_stored` fuzz target's review: postcard ignores bytes after a
    /// value, so a stored value with bytes appended decoded as if it were intact.
    #[test]
    fn a_stored_value_with_bytes_after_it_is_corrupt_r_sec_1() {
        let mut bytes = encode(&("record".to_string(), 7u64)).unwrap();
        assert!(decode::<(String, u64)>(&bytes, "test").is_ok());
        bytes.push(0);
        let err = decode::<(String, u64)>(&bytes, "test").unwrap_err();
        assert!(err.to_string().contains("1 bytes after the value"), "{err}");
    }
}
