//! 行政区划代码: six-digit GB/T 2260 administrative division codes.
//!
//! A code says its level by its shape (`xx0000` province, `xxxx00` city, else county),
//! but a parent is never derived by truncation: municipalities, province-administered
//! counties and cities without counties break that rule, so parents come from config.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Province-level prefixes in use (GB/T 2260 first two digits), including Hong Kong,
/// Macao and Taiwan, which appear in resident identity numbers.
const PROVINCE_PREFIXES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

/// A six-digit administrative division code such as `211382` (Lingyuan).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode([u8; 6]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Province,
    City,
    County,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    #[error("region code must be 6 digits, got {0:?}")]
    Shape(String),
    #[error("region code {0} has no known province prefix")]
    UnknownProvince(String),
}

impl RegionCode {
    pub fn parse(s: &str) -> Result<Self, RegionError> {
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return Err(RegionError::Shape(s.to_string()));
        }
        if !PROVINCE_PREFIXES.contains(&&s[..2]) {
            return Err(RegionError::UnknownProvince(s.to_string()));
        }
        let mut code = [0u8; 6];
        code.copy_from_slice(b);
        Ok(RegionCode(code))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??????")
    }

    pub fn level(&self) -> Level {
        if &self.0[2..] == b"0000" {
            Level::Province
        } else if &self.0[4..] == b"00" {
            Level::City
        } else {
            Level::County
        }
    }

    /// Whether `other` lies inside this region by its code: same province for a province,
    /// same first four digits for a city, equality for a county.
    pub fn contains(&self, other: &RegionCode) -> bool {
        match self.level() {
            Level::Province => self.0[..2] == other.0[..2],
            Level::City => self.0[..4] == other.0[..4],
            Level::County => self == other,
        }
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.as_str())
    }
}

impl std::str::FromStr for RegionCode {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RegionCode::parse(&s)
    }
}

impl From<RegionCode> for String {
    fn from(r: RegionCode) -> String {
        r.as_str().to_string()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Province => "province",
            Level::City => "city",
            Level::County => "county",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_of_the_liaoning_chain() {
        assert_eq!(
            RegionCode::parse("210000").unwrap().level(),
            Level::Province
        );
        assert_eq!(RegionCode::parse("211300").unwrap().level(), Level::City);
        assert_eq!(RegionCode::parse("211382").unwrap().level(), Level::County);
    }

    #[test]
    fn containment_by_code() {
        let liaoning = RegionCode::parse("210000").unwrap();
        let chaoyang = RegionCode::parse("211300").unwrap();
        let lingyuan = RegionCode::parse("211382").unwrap();
        let beijing = RegionCode::parse("110000").unwrap();
        assert!(liaoning.contains(&chaoyang));
        assert!(chaoyang.contains(&lingyuan));
        assert!(!chaoyang.contains(&RegionCode::parse("210102").unwrap()));
        assert!(!beijing.contains(&lingyuan));
    }

    #[test]
    fn bad_shapes_and_unknown_provinces_are_refused() {
        assert!(matches!(
            RegionCode::parse("21138"),
            Err(RegionError::Shape(_))
        ));
        assert!(matches!(
            RegionCode::parse("21138a"),
            Err(RegionError::Shape(_))
        ));
        assert!(matches!(
            RegionCode::parse("991382"),
            Err(RegionError::UnknownProvince(_))
        ));
    }
}
