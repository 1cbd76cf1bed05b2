//! Identifier checks for the two kinds of 信息主体 (R-DATA-1).
//!
//! * 统一社会信用代码 (Unified Social Credit Code, USCC, GB 32100-2015): 18 characters
//!   from a 31-symbol set, mod-31 check character.
//! * 公民身份号码 (resident identity number, GB 11643-1999): 17 digits and an
//!   ISO 7064 MOD 11-2 check character (`0-9` or `X`).
//!
//! The functions take input already normalised by [`normalise_id`]; they never trim or
//! change case themselves, so what they check is exactly what gets stored.

use chrono::{Datelike, NaiveDate};

use crate::domain::region::RegionCode;

/// The 31 USCC symbols; a character's value is its index. I, O, Z, S and V are unused.
const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// USCC weights: 3^i mod 31 for i = 0..16.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Resident-id weights: 2^(17-i) mod 11.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Resident-id check characters, indexed by the weighted sum mod 11.
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Why an identifier was refused. Positions count from 1, as in the standards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    #[error("character {found:?} at position {position} is not allowed: expected {expected}")]
    Character {
        position: usize,
        found: char,
        expected: &'static str,
    },
    #[error("check character expected {expected}, got {got}")]
    CheckChar { expected: char, got: char },
    #[error("region code {0} has no known province prefix")]
    Region(String),
    #[error("birth date {date} {problem}")]
    BirthDate { date: String, problem: &'static str },
}

/// Trims surrounding white space and upper-cases, so `44011320141005001x` and
/// ` 91110000600037341l ` compare and store equal to their canonical forms.
pub fn normalise_id(s: &str) -> String {
    s.trim().to_uppercase()
}

fn uscc_value(c: u8) -> Option<u32> {
    USCC_CHARS.iter().position(|&s| s == c).map(|v| v as u32)
}

/// The mod-31 check character for the first 17 characters of a USCC, or `None` when
/// `body17` is not 17 characters of the USCC set. Allocates nothing, so generators can
/// call it in a loop.
pub fn uscc_check_char(body17: &str) -> Option<char> {
    let body = body17.as_bytes();
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in body.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(char::from(USCC_CHARS[check as usize]))
}

/// The ISO 7064 MOD 11-2 check character for the first 17 digits of a resident
/// identity number, or `None` when `body17` is not 17 ASCII digits. Allocates nothing.
pub fn resident_id_check_char(body17: &str) -> Option<char> {
    let body = body17.as_bytes();
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in body.iter().zip(ID_WEIGHTS) {
        if !c.is_ascii_digit() {
            return None;
        }
        sum += u32::from(c - b'0') * w;
    }
    Some(char::from(ID_CHECK[(sum % 11) as usize]))
}

/// Length in characters, then the string as 18 ASCII bytes.
fn eighteen(code: &str) -> Result<&[u8], IdError> {
    let n = code.chars().count();
    if n != 18 {
        return Err(IdError::Length(n));
    }
    Ok(code.as_bytes())
}

/// The first non-ASCII character with its 1-based position, if any.
fn first_non_ascii(code: &str) -> Option<(usize, char)> {
    code.chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii())
        .map(|(i, c)| (i + 1, c))
}

/// Checks a Unified Social Credit Code (R-DATA-1): 18 characters; positions 1-2
/// (registering authority, organisation type) from the USCC set; positions 3-8 a region
/// code with a known province prefix, or `10xxxx` for central registrations; positions
/// 9-18 from the USCC set; position 18 the mod-31 check character.
///
/// Codes issued in pilot regions before the standard can fail the check yet be real;
/// those are let through by the validator's legacy list, not here.
pub fn check_uscc(code: &str) -> Result<(), IdError> {
    let b = eighteen(code)?;
    if let Some((position, found)) = first_non_ascii(code) {
        return Err(IdError::Character {
            position,
            found,
            expected: "a character of 0-9 A-H J-N P-R T U W-Y",
        });
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = if (2..8).contains(&i) {
            c.is_ascii_digit()
        } else {
            uscc_value(c).is_some()
        };
        if !ok {
            return Err(IdError::Character {
                position: i + 1,
                found: char::from(c),
                expected: if (2..8).contains(&i) {
                    "a digit (region code)"
                } else {
                    "a character of 0-9 A-H J-N P-R T U W-Y"
                },
            });
        }
    }
    let expected = uscc_check_char(&code[..17]).unwrap_or('?');
    let got = char::from(b[17]);
    if expected != got {
        return Err(IdError::CheckChar { expected, got });
    }
    let region = &code[2..8];
    if !region.starts_with("10") && RegionCode::parse(region).is_err() {
        return Err(IdError::Region(region.to_string()));
    }
    Ok(())
}

/// Checks a resident identity number (R-DATA-1): 17 digits and a check character
/// (`0-9` or `X`) that matches ISO 7064 MOD 11-2; the first six digits a region code
/// with a known province prefix (the county itself may be historical, so only the
/// province is checked); digits 7-14 a real birth date between 1900-01-01 and `today`.
pub fn check_resident_id(id: &str, today: NaiveDate) -> Result<(), IdError> {
    let b = eighteen(id)?;
    if let Some((position, found)) = first_non_ascii(id) {
        return Err(IdError::Character {
            position,
            found,
            expected: "a digit",
        });
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = c.is_ascii_digit() || (i == 17 && c == b'X');
        if !ok {
            return Err(IdError::Character {
                position: i + 1,
                found: char::from(c),
                expected: if i == 17 { "a digit or X" } else { "a digit" },
            });
        }
    }
    let expected = resident_id_check_char(&id[..17]).unwrap_or('?');
    let got = char::from(b[17]);
    if expected != got {
        return Err(IdError::CheckChar { expected, got });
    }
    let region = &id[..6];
    if RegionCode::parse(region).is_err() {
        return Err(IdError::Region(region.to_string()));
    }
    check_birth_date(&id[6..14], today)
}

fn check_birth_date(digits: &str, today: NaiveDate) -> Result<(), IdError> {
    let err = |problem| IdError::BirthDate {
        date: digits.to_string(),
        problem,
    };
    // Eight ASCII digits were checked by the caller, so these parses cannot fail.
    let year: i32 = digits[..4].parse().map_err(|_| err("is not a date"))?;
    let month: u32 = digits[4..6].parse().map_err(|_| err("is not a date"))?;
    let day: u32 = digits[6..].parse().map_err(|_| err("is not a date"))?;
    let date =
        NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| err("is not a calendar date"))?;
    if date.year() < 1900 {
        return Err(err("is before 1900-01-01"));
    }
    if date > today {
        return Err(err("is after today"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
    }

    /// A resident id with a valid check character on the given 17-digit body.
    fn with_id_check(body17: &str) -> String {
        format!("{body17}{}", resident_id_check_char(body17).unwrap())
    }

    fn with_uscc_check(body17: &str) -> String {
        format!("{body17}{}", uscc_check_char(body17).unwrap())
    }

    const VALID_USCC: [&str; 5] = [
        "91110000600037341L",
        "121200004013590816",
        "91620105MA71T4YW8Q",
        "92340602MA2PBMEM24",
        "911522010783710635",
    ];

    const VALID_IDS: [&str; 5] = [
        "211382198002290134",
        "211302199512310249",
        "211381200001011053",
        "360426199101010071",
        "44011320141005001X",
    ];

    #[test]
    fn r_data_1_published_usccs_pass() {
        for code in VALID_USCC {
            assert_eq!(check_uscc(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn uscc_check_chars_match_the_research_notes() {
        for code in VALID_USCC {
            assert_eq!(uscc_check_char(&code[..17]), code.chars().last(), "{code}");
        }
        // Pilot-region codes that fail the check; the notes give the computed character.
        assert_eq!(uscc_check_char("91350100M0001TGQX"), Some('1'));
        assert_eq!(uscc_check_char("91350211M0000XUF4"), Some('R'));
    }

    #[test]
    fn r_data_1_uscc_with_wrong_check_char_is_refused() {
        assert_eq!(
            check_uscc("91110000600037341M"),
            Err(IdError::CheckChar {
                expected: 'L',
                got: 'M'
            })
        );
        let msg = check_uscc("91350100M0001TGQXM").unwrap_err().to_string();
        assert_eq!(msg, "check character expected 1, got M");
    }

    #[test]
    fn uscc_length_and_characters() {
        assert_eq!(check_uscc("91110000600037341"), Err(IdError::Length(17)));
        assert_eq!(check_uscc(""), Err(IdError::Length(0)));
        // Letters excluded from the set (I, O, Z, S, V) and lower case.
        let err = check_uscc("9111000060003734IL").unwrap_err();
        assert!(matches!(
            err,
            IdError::Character {
                position: 17,
                found: 'I',
                ..
            }
        ));
        assert!(err.to_string().contains("position 17"), "{err}");
        assert!(matches!(
            check_uscc("91110000600037341l"),
            Err(IdError::Character { position: 18, .. })
        ));
        // Region part must be digits.
        assert!(matches!(
            check_uscc("9111A000600037341L"),
            Err(IdError::Character { position: 5, .. })
        ));
        // Non-ASCII is reported by its character position, not byte offset.
        assert!(matches!(
            check_uscc("91一10000600037341L"),
            Err(IdError::Character {
                position: 3,
                found: '一',
                ..
            })
        ));
    }

    #[test]
    fn uscc_region_prefix() {
        let central = with_uscc_check("91100000MA0000001");
        assert_eq!(check_uscc(&central), Ok(()));
        let lingyuan = with_uscc_check("91211382MA0000001");
        assert_eq!(check_uscc(&lingyuan), Ok(()));
        let bad = with_uscc_check("91991382MA0000001");
        assert_eq!(check_uscc(&bad), Err(IdError::Region("991382".into())));
        assert_eq!(
            check_uscc(&bad).unwrap_err().to_string(),
            "region code 991382 has no known province prefix"
        );
    }

    #[test]
    fn uscc_authority_letters_are_accepted() {
        let y = with_uscc_check("Y1211382MA0000001");
        assert_eq!(check_uscc(&y), Ok(()));
    }

    #[test]
    fn r_data_1_published_resident_ids_pass() {
        for id in VALID_IDS {
            assert_eq!(check_resident_id(id, today()), Ok(()), "{id}");
            assert_eq!(resident_id_check_char(&id[..17]), id.chars().last());
        }
    }

    #[test]
    fn r_data_1_resident_id_with_wrong_check_char_is_refused() {
        assert_eq!(
            check_resident_id("211382198002290135", today()),
            Err(IdError::CheckChar {
                expected: '4',
                got: '5'
            })
        );
        assert_eq!(
            check_resident_id("44011320141005001X", today()),
            Ok(()),
            "X is a check character"
        );
        assert!(matches!(
            check_resident_id("4401132014100500X1", today()),
            Err(IdError::Character {
                position: 17,
                found: 'X',
                ..
            })
        ));
    }

    #[test]
    fn resident_id_lower_case_x_needs_normalising() {
        let raw = " 44011320141005001x ";
        assert!(check_resident_id(raw, today()).is_err());
        assert_eq!(normalise_id(raw), "44011320141005001X");
        assert_eq!(check_resident_id(&normalise_id(raw), today()), Ok(()));
    }

    #[test]
    fn resident_id_impossible_dates() {
        for body in [
            "21138219800230013",
            "21138219000229013",
            "21138219801301013",
        ] {
            let id = with_id_check(body);
            let err = check_resident_id(&id, today()).unwrap_err();
            assert!(
                matches!(
                    err,
                    IdError::BirthDate {
                        problem: "is not a calendar date",
                        ..
                    }
                ),
                "{id}: {err}"
            );
        }
        let early = with_id_check("21138218991231013");
        assert_eq!(
            check_resident_id(&early, today()).unwrap_err().to_string(),
            "birth date 18991231 is before 1900-01-01"
        );
    }

    #[test]
    fn resident_id_future_birth_date() {
        let tomorrow = with_id_check("21138220240616013");
        assert_eq!(
            check_resident_id(&tomorrow, today())
                .unwrap_err()
                .to_string(),
            "birth date 20240616 is after today"
        );
        let born_today = with_id_check("21138220240615013");
        assert_eq!(check_resident_id(&born_today, today()), Ok(()));
    }

    #[test]
    fn resident_id_bad_region_prefix() {
        let id = with_id_check("99138219800229013");
        assert_eq!(
            check_resident_id(&id, today()),
            Err(IdError::Region("991382".into()))
        );
    }

    #[test]
    fn resident_id_length() {
        assert_eq!(
            check_resident_id("21138219800229013", today()),
            Err(IdError::Length(17))
        );
        // A 15-digit legacy number is not accepted as a resident id.
        assert_eq!(
            check_resident_id("211382800229013", today()),
            Err(IdError::Length(15))
        );
    }

    #[test]
    fn check_char_helpers_refuse_bad_bodies() {
        assert_eq!(resident_id_check_char("2113821980022901"), None);
        assert_eq!(resident_id_check_char("2113821980022901A"), None);
        assert_eq!(uscc_check_char("9111000060003734"), None);
        assert_eq!(uscc_check_char("9111000060003734I"), None);
    }
}
