//! Masking personal identifiers inside free text (R-REL-2, R-DATA-3): what public
//! release and the usage log do to text a provider or a caller wrote.
//!
//! A field typed as an identifier is masked or withheld by its catalog rule; this module
//! is for the identifiers that hide in text (`facts`, `decision_no`, `provider_ref`, a
//! refusal message that quotes its input). It masks by shape, never by checking: a
//! resident id with a wrong check character identifies a person just as well.
//!
//! * 18-character resident ids (17 digits and a digit or `X`), always, and 15-digit
//!   ones (issued before 1999): always about a natural person, else when digits 7-12
//!   are a date (a 15-digit enterprise registration number is not personal);
//! * mainland mobile numbers (`1[3-9]` and 9 more digits, also written `138 1234 5678`),
//!   always;
//! * bank card numbers (13 to 19 digits, also in groups): always when the text is about a
//!   natural person, else when the Luhn check passes (a legal person's text holds
//!   licence and case numbers of that length that are not personal);
//! * a sole trader's (个体工商户) USCC-shaped code, type `92`, always: it identifies its
//!   owner; for a natural person any USCC-shaped token, and any run of 20 or more digits;
//! * the names given (the subject's own), wherever they appear.
//!
//! The style is `record::mask_id`'s: a few leading and trailing characters kept, stars
//! between, separators kept where the number was written in groups.

use super::identifier::uscc_check_char;

/// What a piece of text is masked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Masking<'a> {
    /// The text belongs to a record about a natural person: masking is conservative
    /// (USCC-shaped tokens, every long digit run).
    pub natural: bool,
    /// Names masked wherever they appear (a name of one character is left alone: it
    /// would mask that character everywhere).
    pub names: &'a [&'a str],
}

impl Masking<'_> {
    /// For text kept about no particular subject (the usage log): every identifier
    /// shape, conservatively, and no names.
    pub const LOG: Masking<'static> = Masking {
        natural: true,
        names: &[],
    };
}

/// A name masked: its first character kept, the rest stars (`张**`).
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count())),
        None => String::new(),
    }
}

/// `text` with every identifier and name `how` asks for masked. Text without any comes
/// back unchanged.
pub fn mask_text(text: &str, how: Masking<'_>) -> String {
    // Every identifier shape holds digits; most text (names of units, dates aside) needs
    // only the name check.
    let names_in = || {
        how.names
            .iter()
            .any(|n| n.trim().chars().count() >= 2 && text.contains(n.trim()))
    };
    if !text.bytes().any(|b| b.is_ascii_digit()) && !names_in() {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    let mut star = vec![false; chars.len()];
    mark_digit_chains(&chars, how.natural, &mut star);
    mark_uscc_shapes(&chars, !how.natural, &mut star);
    for (c, s) in chars.iter_mut().zip(&star) {
        if *s {
            *c = '*';
        }
    }
    let mut out: String = chars.into_iter().collect();
    for name in how.names {
        let name = name.trim();
        if name.chars().count() >= 2 && out.contains(name) {
            out = out.replace(name, &mask_name(name));
        }
    }
    out
}

/// Separators a number may be written with inside one group chain.
fn is_separator(c: char) -> bool {
    c == ' ' || c == '-'
}

/// The digit run starting at `i`: its end (exclusive).
fn digit_run(chars: &[char], i: usize) -> usize {
    let mut j = i;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    j
}

/// Marks the digits of every identifier-shaped number. A number is a digit run, or a
/// chain of runs of 3 to 8 digits joined by one space or hyphen each
/// (`6222 0212 3456 7890`, `138-1234-5678`, `211382 19800229 0134`).
fn mark_digit_chains(chars: &[char], natural: bool, star: &mut [bool]) {
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Positions of the chain's digits (and a closing X of a resident id).
        let mut digits: Vec<usize> = Vec::new();
        let end = digit_run(chars, i);
        digits.extend(i..end);
        let mut last = end;
        if (3..=8).contains(&(end - i)) {
            loop {
                let next = last + 1;
                if last >= chars.len() || !is_separator(chars[last]) {
                    break;
                }
                if next >= chars.len() || !chars[next].is_ascii_digit() {
                    break;
                }
                let group_end = digit_run(chars, next);
                let whole = group_end >= chars.len()
                    || !chars[group_end].is_ascii_alphanumeric()
                    || matches!(chars[group_end], 'X' | 'x');
                if !(3..=8).contains(&(group_end - next)) || !whole {
                    break;
                }
                digits.extend(next..group_end);
                last = group_end;
            }
        }
        // A resident id's check character X closes the chain.
        if digits.len() == 17 && last < chars.len() && matches!(chars[last], 'X' | 'x') {
            digits.push(last);
            last += 1;
        }
        let values: Vec<char> = digits.iter().map(|&p| chars[p]).collect();
        if let Some((keep_front, keep_back)) = identifier_kind(&values, natural) {
            let n = digits.len();
            for &p in &digits[keep_front.min(n)..n.saturating_sub(keep_back)] {
                star[p] = true;
            }
        }
        i = last.max(i + 1);
    }
}

/// How many leading and trailing characters of a number stay visible, if it is an
/// identifier's shape: `None` for a number left as it is.
fn identifier_kind(digits: &[char], natural: bool) -> Option<(usize, usize)> {
    let n = digits.len();
    match n {
        // Resident ids, new (a digit or X last) and old (region, YYMMDD, sequence).
        18 => Some((4, 4)),
        15 if natural || old_birth_date(digits) => Some((4, 4)),
        // A mobile: 1[3-9] and nine more.
        11 if digits[0] == '1' && ('3'..='9').contains(&digits[1]) => Some((3, 4)),
        13..=19 if natural || luhn(digits) => Some((4, 4)),
        20.. if natural => Some((4, 4)),
        _ => None,
    }
}

/// Whether digits 7-12 of a 15-digit number are a date YYMMDD (19YY), as in an old
/// resident id.
fn old_birth_date(digits: &[char]) -> bool {
    let two = |i: usize| {
        digits[i]
            .to_digit(10)
            .zip(digits[i + 1].to_digit(10))
            .map(|(a, b)| a * 10 + b)
    };
    match (two(6), two(8), two(10)) {
        (Some(y), Some(m), Some(d)) => {
            chrono::NaiveDate::from_ymd_opt(1900 + y as i32, m, d).is_some()
        }
        _ => false,
    }
}

/// The Luhn check bank card numbers carry.
fn luhn(digits: &[char]) -> bool {
    let mut sum = 0;
    for (i, c) in digits.iter().rev().enumerate() {
        let Some(d) = c.to_digit(10) else {
            return false;
        };
        sum += if i % 2 == 1 {
            let twice = d * 2;
            if twice > 9 { twice - 9 } else { twice }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// Marks every 18-character window of ASCII letters and digits that has a USCC's shape:
/// USCC symbols, positions 3-8 digits, and letters or a valid check character (a run of
/// 18 bare digits is already a resident id's shape). With `sole_traders_only`, only the
/// codes of type `92` (个体工商户 registered by market regulation).
fn mark_uscc_shapes(chars: &[char], sole_traders_only: bool, star: &mut [bool]) {
    const LEN: usize = 18;
    if chars.len() < LEN {
        return;
    }
    let in_set = |c: char| {
        let c = c.to_ascii_uppercase();
        c.is_ascii_digit() || (c.is_ascii_uppercase() && !"IOSVZ".contains(c))
    };
    for start in 0..=chars.len() - LEN {
        let w = &chars[start..start + LEN];
        if !w.iter().all(|&c| in_set(c)) || !w[2..8].iter().all(char::is_ascii_digit) {
            continue;
        }
        if sole_traders_only && w[..2] != ['9', '2'] {
            continue;
        }
        let body: String = w[..17].iter().map(char::to_ascii_uppercase).collect();
        let checks = uscc_check_char(&body) == Some(w[17].to_ascii_uppercase());
        let letters = w.iter().any(char::is_ascii_alphabetic);
        if checks || letters {
            for s in &mut star[start + 4..start + LEN - 4] {
                *s = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSON: Masking<'static> = Masking {
        natural: true,
        names: &["王建国"],
    };
    const FIRM: Masking<'static> = Masking {
        natural: false,
        names: &[],
    };

    #[test]
    fn resident_ids_are_masked_whatever_their_check_character_r_rel_2() {
        for (text, masked) in [
            (
                "身份证号211382198002290134，",
                "身份证号2113**********0134，",
            ),
            ("ID 21138219800229013X.", "ID 2113**********013X."),
            ("id:21138219800229013x", "id:2113**********013x"),
            // A wrong check character is still a person's number.
            ("211382198002290135", "2113**********0135"),
            ("211382800229013", "2113*******9013"),
            ("211382 800229 013", "2113** *****9 013"),
            ("211382 19800229 0134", "2113** ******** 0134"),
        ] {
            assert_eq!(mask_text(text, FIRM), masked, "{text}");
            assert_eq!(mask_text(text, PERSON), masked, "{text}");
        }
    }

    #[test]
    fn mobiles_and_cards_are_masked_r_rel_2() {
        assert_eq!(mask_text("电话13812345678", FIRM), "电话138****5678");
        assert_eq!(mask_text("tel 138-1234-5678", FIRM), "tel 138-****-5678");
        assert_eq!(mask_text("+86 138 1234 5678", FIRM), "+86 138 **** 5678");
        // Not a mobile: 12 is not a mobile prefix, 11 digits otherwise left alone.
        assert_eq!(mask_text("12345678901", PERSON), "12345678901");
        // A Luhn-valid card, bare and in groups.
        let card = "6222021234567890128";
        assert!(luhn(&card.chars().collect::<Vec<_>>()));
        assert_eq!(mask_text(card, FIRM), "6222***********0128");
        assert_eq!(
            mask_text("卡号 6222 0212 3456 7890 128", FIRM),
            "卡号 6222 **** **** ***0 128"
        );
        // A Luhn-invalid long number: a firm's licence number stays, a person's text
        // masks it all the same.
        assert_eq!(mask_text("JY12113820012345", FIRM), "JY12113820012345");
        assert_eq!(mask_text("JY12113820012345", PERSON), "JY1211******2345");
    }

    #[test]
    fn an_old_id_is_told_from_a_registration_number_in_a_firms_text() {
        // Region 211382, then no date: a 15-digit 注册号.
        assert_eq!(
            mask_text("注册号211382600000567", FIRM),
            "注册号211382600000567"
        );
        assert_eq!(
            mask_text("注册号211382600000567", PERSON),
            "注册号2113*******0567"
        );
        assert_eq!(mask_text("211382800229013", FIRM), "2113*******9013");
    }

    #[test]
    fn ordinary_numbers_stay() {
        for text in [
            "凌市监罚决〔2024〕101号",
            "（2024）辽1382民初1001号",
            "2024-01-01 至 2025-12-31",
            "罚款 5000 元",
            "202401234567",
            "01947f3c-1234-7abc-8def-123456789012",
            "accepted 998, rejected 2",
        ] {
            assert_eq!(mask_text(text, PERSON), text, "{text}");
        }
    }

    #[test]
    fn a_sole_traders_uscc_is_masked_everywhere_other_codes_in_a_persons_text() {
        let text = "个体工商户 92211382MA0Y8L6X3K 经营";
        let masked = "个体工商户 9221**********6X3K 经营";
        assert_eq!(mask_text(text, FIRM), masked);
        assert_eq!(mask_text(text, PERSON), masked);
        // An enterprise's code is not personal, except in a person's record.
        let text = "供货方 91211382MA0Y3K1050";
        assert_eq!(mask_text(text, FIRM), text);
        assert_eq!(mask_text(text, PERSON), "供货方 9121**********1050");
        // Lower case, and glued to other text.
        assert_eq!(
            mask_text("代码92211382ma0y8l6x3k", PERSON),
            "代码9221**********6x3k"
        );
    }

    #[test]
    fn the_subjects_name_is_masked_wherever_it_appears() {
        assert_eq!(
            mask_text("当事人王建国于2024年", PERSON),
            "当事人王**于2024年"
        );
        let one = Masking {
            natural: true,
            names: &["王"],
        };
        assert_eq!(mask_text("王府井", one), "王府井");
        assert_eq!(mask_text("王建国", PERSON), "王**");
    }
}
