//! Masking personal identifiers inside free text (R-REL-2, R-DATA-3): what public
//! release and the usage log do to text a provider or a caller wrote.
//!
//! A field typed as an identifier is masked or withheld by its catalog rule; this module
//! is for the identifiers that hide in text (`facts`, `decision_no`, `provider_ref`, a
//! refusal message that quotes its input). It masks by shape, never by checking: a
//! resident id with a wrong check character identifies a person just as well.
//!
//! A number is a chain of digit runs joined by up to three separators each (spaces of
//! any kind, hyphens and dashes, `_`, `.`, `/`), whatever the groups' lengths; full-width
//! digits, `Ｘ` and `－` count as their ASCII forms. Inside a chain every window is tried.
//!
//! * 18-character resident ids (17 digits and a digit or `X`): a chain of exactly that
//!   length always, and any 18-window starting with a province code and a birth date;
//!   15-digit ones (issued before 1999): always about a natural person, else when they
//!   start with a province code and a date YYMMDD (a 15-digit 注册号 is not personal);
//! * mainland mobile numbers (`1[3-9]` and 9 more digits, also `138 1234 5678`,
//!   `+86 139…`, `0086-139-…`, one followed by an amount): for a natural person any
//!   11-window, in a legal person's text one that starts a group or follows 86 / 0086;
//! * bank card numbers (13 to 19 digits, also in groups): always when the text is about a
//!   natural person, else when the Luhn check passes, for the chain or any span of its
//!   groups (a legal person's text holds licence and case numbers of that length);
//! * a sole trader's (个体工商户) USCC-shaped code, type `92`, always: it identifies its
//!   owner; for a natural person any USCC-shaped token, and any run of 20 or more digits;
//! * for a natural person, a run of 6 to 12 digits that could be part of a resident id
//!   split over several places: one starting with a province code or a birth date
//!   YYYYMMDD (unless glued to ASCII letters, as in a record id);
//! * the names given (the subject's own), wherever they appear.
//!
//! The style is `record::mask_id`'s: a few leading and trailing characters kept, stars
//! between, separators kept where the number was written in groups.

use super::identifier::uscc_check_char;
use crate::domain::usage::{Outcome, UsageEntry};

/// What a piece of text is masked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Masking<'a> {
    /// The text belongs to a record about a natural person: masking is conservative
    /// (USCC-shaped tokens, every long digit run).
    pub natural: bool,
    /// Names masked wherever they appear (a name of one character is left alone: it
    /// would mask that character everywhere).
    pub names: &'a [&'a str],
    /// With `natural`, also the shorter runs of digits that could be part of a resident
    /// id split over several places (a province's code, a birth date): for released text
    /// about a person, not for the usage log, whose details name regions by code.
    pub parts: bool,
}

impl<'a> Masking<'a> {
    /// For text kept about no particular subject (the usage log): every identifier
    /// shape, conservatively, and no names.
    pub const LOG: Masking<'static> = Masking {
        natural: true,
        names: &[],
        parts: false,
    };

    /// For released text: conservative (`natural`, `parts`) about a person, by shape
    /// otherwise; `names` masked either way.
    pub fn released(personal: bool, names: &'a [&'a str]) -> Masking<'a> {
        Masking {
            natural: personal,
            names,
            parts: personal,
        }
    }
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
///
/// Full-width forms (`２１１３…`, `Ｘ`, `－`) count as the ASCII characters they stand
/// for; a masked character becomes `*` whatever its width, the others stay as written.
pub fn mask_text(text: &str, how: Masking<'_>) -> String {
    // Every identifier shape holds digits; most text (names of units, dates aside) needs
    // only the name check.
    let names_in = || {
        how.names
            .iter()
            .any(|n| n.trim().chars().count() >= 2 && text.contains(n.trim()))
    };
    if !text.chars().any(|c| half_width(c).is_ascii_digit()) && !names_in() {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    let mut plain: Vec<char> = chars.iter().map(|&c| half_width(c)).collect();
    hide_uuids(&mut plain);
    let mut star = vec![false; chars.len()];
    mark_digit_chains(&plain, how, &mut star);
    mark_uscc_shapes(&plain, !how.natural, &mut star);
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

/// Replaces every UUID (a record's or a consent's id, `8-4-4-4-12` hex digits) by
/// letters: its digit groups are not a number, and the usage log links entries by them.
fn hide_uuids(plain: &mut [char]) {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    const LEN: usize = 36;
    let hex = |c: char| c.is_ascii_hexdigit();
    let mut i = 0;
    while i + LEN <= plain.len() {
        let boundary = |p: Option<usize>| {
            p.and_then(|p| plain.get(p))
                .is_none_or(|&c| !c.is_ascii_alphanumeric())
        };
        let mut p = i;
        let mut fits = boundary(i.checked_sub(1)) && boundary(Some(i + LEN));
        for (k, &len) in SHAPE.iter().enumerate() {
            if !fits {
                break;
            }
            fits = plain[p..p + len].iter().all(|&c| hex(c));
            p += len;
            if k < SHAPE.len() - 1 {
                fits = fits && plain[p] == '-';
                p += 1;
            }
        }
        if fits {
            for c in &mut plain[i..i + LEN] {
                *c = 'u';
            }
            i += LEN;
        } else {
            i += 1;
        }
    }
}

/// The ASCII character a full-width form (U+FF01..U+FF5E) stands for, a space for the
/// ideographic space; anything else as it is.
fn half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Characters a number may be written with between its groups: spaces of every kind,
/// hyphens and dashes, underscore, full stop, slash, middle dot.
fn is_separator(c: char) -> bool {
    (c.is_whitespace() && c != '\n' && c != '\r')
        || matches!(
            c,
            '-' | '_' | '.' | '/' | '·' | '\u{2010}'
                ..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{30FB}'
        )
}

/// The longest run of separators that still joins two groups of one number.
const MAX_GAP: usize = 3;

/// The digit run starting at `i`: its end (exclusive).
fn digit_run(chars: &[char], i: usize) -> usize {
    let mut j = i;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    j
}

/// A number as written: its digits (a closing `X` of a resident id as 10), where each
/// stands in the text, and where each of its groups starts (indexes into `digits`).
struct Chain {
    digits: Vec<u8>,
    at: Vec<usize>,
    groups: Vec<usize>,
}

/// Marks the digits of every identifier-shaped number. A number is a chain of digit
/// runs joined by up to [`MAX_GAP`] separators each, whatever the groups' lengths
/// (`6222 0212 3456 7890`, `138-1234-5678`, `211382.19800229.0134`, `211382 198002290134`).
/// Inside a chain every window is tried: an 18-digit (or 17 and `X`) or 15-digit resident
/// id by its region and birth date, a mobile (`1[3-9]` and nine more); the chain as a
/// whole by its length. For a natural person also every shorter run that could be part
/// of a resident id (a region code, a birth date).
fn mark_digit_chains(chars: &[char], how: Masking<'_>, star: &mut [bool]) {
    let natural = how.natural;
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut chain = Chain {
            digits: Vec::new(),
            at: Vec::new(),
            groups: Vec::new(),
        };
        let mut start = i;
        let mut last;
        let mut runs = Vec::new();
        loop {
            let end = digit_run(chars, start);
            chain.groups.push(chain.digits.len());
            for (p, &c) in chars.iter().enumerate().take(end).skip(start) {
                chain.digits.push(c as u8 - b'0');
                chain.at.push(p);
            }
            runs.push((start, end));
            last = end;
            let mut next = end;
            while next < chars.len() && next - end < MAX_GAP && is_separator(chars[next]) {
                next += 1;
            }
            if next == end || next >= chars.len() || !chars[next].is_ascii_digit() {
                break;
            }
            start = next;
        }
        // A resident id's check character X closes the chain.
        if last < chars.len() && matches!(chars[last], 'X' | 'x') {
            chain.digits.push(10);
            chain.at.push(last);
            last += 1;
        }
        if !mark_chain(&chain, natural, star) && natural && how.parts {
            for (start, end) in runs {
                mark_id_part(chars, start, end, star);
            }
        }
        i = last.max(i + 1);
    }
}

/// Marks the identifiers in one chain: whether it held any.
fn mark_chain(chain: &Chain, natural: bool, star: &mut [bool]) -> bool {
    let d = &chain.digits;
    let n = d.len();
    let mut any = false;
    let mut mark = |from: usize, len: usize, front: usize, back: usize| {
        any = true;
        let (a, b) = (from + front.min(len), from + len.saturating_sub(back));
        for &p in chain.at.get(a..b.max(a)).unwrap_or_default() {
            star[p] = true;
        }
    };
    let plain = |w: &[u8]| w.iter().all(|&x| x < 10);
    // The chain as a whole. Eighteen characters are a resident id's shape, always.
    let whole = match n {
        18 if plain(&d[..17]) => Some((4, 4)),
        15 if plain(d) && (natural || old_id(d)) => Some((4, 4)),
        11 if mobile(d) => Some((3, 4)),
        13..=19 if plain(d) && (natural || luhn(d)) => Some((4, 4)),
        20.. if natural => Some((4, 4)),
        _ => None,
    };
    if let Some((front, back)) = whole {
        mark(0, n, front, back);
    }
    // Windows inside a longer chain: a number glued to the next one, an id after a
    // country code, a mobile followed by an amount.
    let group_start = |s: usize| chain.groups.contains(&s);
    for s in 0..n {
        if s + 18 <= n && new_id(&d[s..s + 18]) {
            mark(s, 18, 4, 4);
        }
        if s + 15 <= n && plain(&d[s..s + 15]) && old_id(&d[s..s + 15]) {
            mark(s, 15, 4, 4);
        }
        // In a legal person's text a mobile starts a group, or follows 86 / 0086 at
        // the start of one: a long case or licence number holds `1[3-9]` anywhere.
        let prefixed = |k: usize| {
            s >= k && group_start(s - k) && (d[s - k..s] == [8, 6] || d[s - k..s] == [0, 0, 8, 6])
        };
        if s + 11 <= n
            && mobile(&d[s..s + 11])
            && (natural || group_start(s) || prefixed(2) || prefixed(4))
        {
            mark(s, 11, 3, 4);
        }
    }
    // A card in groups next to another number: every span of whole groups.
    if !natural {
        let mut bounds = chain.groups.clone();
        bounds.push(n);
        for (a, &from) in bounds.iter().enumerate() {
            for &to in &bounds[a + 1..] {
                let len = to - from;
                if (13..=19).contains(&len) && len < n && plain(&d[from..to]) && luhn(&d[from..to])
                {
                    mark(from, len, 4, 4);
                }
            }
        }
    }
    any
}

/// For a natural person: a run of 6 to 12 digits that could be part of a resident id
/// split over several places (`前六位211382`, `198002290134`): one that starts with a
/// province's code or with a birth date YYYYMMDD. A run glued to ASCII letters is part of
/// a code (a record id, a licence number), not of an id.
fn mark_id_part(chars: &[char], start: usize, end: usize, star: &mut [bool]) {
    let n = end - start;
    if !(6..=12).contains(&n) {
        return;
    }
    let letter = |p: Option<usize>| {
        p.and_then(|p| chars.get(p))
            .is_some_and(char::is_ascii_alphabetic)
    };
    let before = start.checked_sub(1);
    let glued = letter(before)
        || letter(Some(end))
        || (before.is_some_and(|b| chars[b] == '-') && letter(start.checked_sub(2)))
        || (chars.get(end) == Some(&'-') && letter(Some(end + 1)));
    if glued {
        return;
    }
    let d: Vec<u8> = chars[start..end].iter().map(|&c| c as u8 - b'0').collect();
    if province(&d) || (n >= 8 && birth_date(&d[..8])) {
        let keep = n / 4;
        for s in &mut star[start + keep..end - keep] {
            *s = true;
        }
    }
}

/// Whether the first two digits are a province's code (the start of a region code).
fn province(d: &[u8]) -> bool {
    d.len() >= 2
        && matches!(
            d[0] * 10 + d[1],
            11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81..=83
        )
}

/// Whether eight digits are a date YYYYMMDD in 1900..=2099.
fn birth_date(d: &[u8]) -> bool {
    let num = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |a, &x| a * 10 + x as u32);
    let year = num(0..4) as i32;
    (1900..=2099).contains(&year)
        && chrono::NaiveDate::from_ymd_opt(year, num(4..6), num(6..8)).is_some()
}

/// An 18-character resident id by shape: a province, a birth date, a digit or X last.
fn new_id(d: &[u8]) -> bool {
    d[..17].iter().all(|&x| x < 10) && province(d) && birth_date(&d[6..14])
}

/// A 15-digit resident id (issued before 1999): a province, a date YYMMDD (19YY).
fn old_id(d: &[u8]) -> bool {
    let two = |i: usize| (d[i] * 10 + d[i + 1]) as u32;
    province(d) && chrono::NaiveDate::from_ymd_opt(1900 + two(6) as i32, two(8), two(10)).is_some()
}

/// A mainland mobile: `1[3-9]` and nine more digits.
fn mobile(d: &[u8]) -> bool {
    d.len() == 11 && d[0] == 1 && (3..=9).contains(&d[1]) && d.iter().all(|&x| x < 10)
}

/// The Luhn check bank card numbers carry.
fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        if d > 9 {
            return false;
        }
        let d = d as u32;
        sum += if i % 2 == 1 {
            let twice = d * 2;
            if twice > 9 { twice - 9 } else { twice }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
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

/// The masking of a usage entry's free text, kept with the masking rules it applies.
impl UsageEntry {
    /// Masks the personal identifiers (resident ids, mobiles, bank cards, USCC-shaped
    /// codes) in the entry's free text (detail, refusal message and field, and the
    /// purpose and consent id as the caller sent them) before it is kept (R-REL-2, R-DATA-3).
    /// `subject` is left whole: it is what the subject's history is found by; `caller`
    /// and `on_behalf_of` are identities, who used the data. Names are masked only as
    /// [`UsageEntry::scrub_free_text_naming`] is given them.
    pub fn scrub_free_text(&mut self) {
        self.scrub_free_text_naming(&[]);
    }

    /// [`UsageEntry::scrub_free_text`], and `names` (the names the node holds for the
    /// entry's subject) masked wherever they appear in the same free text.
    pub fn scrub_free_text_naming(&mut self, names: &[&str]) {
        let how = Masking {
            names,
            ..Masking::LOG
        };
        self.detail = mask_text(&self.detail, how);
        // Taken from the request before it is checked, so they hold what a caller typed.
        for text in [&mut self.purpose, &mut self.consent_id]
            .into_iter()
            .flatten()
        {
            *text = mask_text(text, how);
        }
        if let Outcome::Refused { message, field, .. } = &mut self.outcome {
            *message = mask_text(message, how);
            // A refused field's name is the caller's key (`fields.<anything>`).
            *field = mask_text(field, how);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::Action;

    const PERSON: Masking<'static> = Masking {
        natural: true,
        names: &["王建国"],
        parts: true,
    };
    const FIRM: Masking<'static> = Masking {
        natural: false,
        names: &[],
        parts: false,
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
        // (This one also passes the Luhn check as a whole: masked as a card too.)
        assert_eq!(mask_text("+86 138 1234 5678", FIRM), "+86 13* **** 5678");
        assert_eq!(mask_text("+86 139 1234 5678", FIRM), "+86 139 **** 5678");
        // Not a mobile: 12 is not a mobile prefix, 11 digits otherwise left alone (in a
        // person's text a run starting with a province's code is masked all the same).
        assert_eq!(mask_text("12345678901", FIRM), "12345678901");
        // A Luhn-valid card, bare and in groups.
        let card = "6222021234567890128";
        assert!(luhn(&card.bytes().map(|b| b - b'0').collect::<Vec<_>>()));
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
            "罚款 5000.00 元，2024.01.15 缴清",
            "01947f3c-1234-7abc-8def-123456789012",
            "consent 019d420c-5e7f-7339-ad80-000000000040 expired",
            "019d420c-5e7f-7339-ad80-211382198002",
            "accepted 998, rejected 2",
        ] {
            assert_eq!(mask_text(text, PERSON), text, "{text}");
            assert_eq!(mask_text(text, Masking::LOG), text, "{text}");
        }
        // A firm's case number and amounts stay; a person's text masks a number that
        // starts with a birth date.
        for text in [
            "202401234567",
            "罚款 500000 元",
            "罚款 13,800 元，2024-01-15 至 2024-12-31",
            "编号 2024138123456780",
        ] {
            assert_eq!(mask_text(text, FIRM), text, "{text}");
        }
        assert_eq!(mask_text("202401234567", PERSON), "202******567");
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
            names: &["王"],
            ..PERSON
        };
        assert_eq!(mask_text("王府井", one), "王府井");
        assert_eq!(mask_text("王建国", PERSON), "王**");
    }

    #[test]
    fn full_width_digits_and_x_are_masked_r_rel_2() {
        let text = "当事人身份证２１１３８２１９８００２２９０１３４，电话１３８１２３４５６７８";
        let masked = "当事人身份证２１１３**********０１３４，电话１３８****５６７８";
        assert_eq!(mask_text(text, PERSON), masked);
        assert_eq!(mask_text(text, FIRM), masked);
        assert_eq!(
            mask_text("２１１３８２１９８００２２９０１３Ｘ", FIRM),
            "２１１３**********０１３Ｘ"
        );
        assert_eq!(
            mask_text("tel １３８－１２３４－５６７８", FIRM),
            "tel １３８－****－５６７８"
        );
        assert_eq!(
            mask_text("代码９２２１１３８２ＭＡ０Ｙ８Ｌ６Ｘ３Ｋ", FIRM),
            "代码９２２１**********６Ｘ３Ｋ"
        );
    }

    #[test]
    fn ids_split_unevenly_or_by_other_separators_are_masked_r_rel_2() {
        for text in [
            "211382 198002290134",
            "211382.19800229.0134",
            "211382/19800229/0134",
            "211382\u{3000}19800229\u{3000}0134",
            "211382\u{a0}19800229\u{a0}0134",
            "211382—19800229—0134",
            "211382_19800229_0134",
            "21138219800229 0134",
            "2113 8219 8002 2901 34",
            "211382 - 19800229 - 0134",
        ] {
            for how in [FIRM, PERSON] {
                let out = mask_text(text, how);
                let digits: String = out.chars().filter(char::is_ascii_digit).collect();
                assert_eq!(digits, "21130134", "{text} -> {out}");
            }
        }
        // An id glued to the number after it, in a firm's text.
        let out = mask_text("证件号21138219800229013499", FIRM);
        assert!(!out.contains("19800229"), "{out}");
    }

    #[test]
    fn mobiles_with_a_country_code_or_next_to_a_number_are_masked_in_a_firms_text_r_rel_2() {
        for (text, masked) in [
            ("联系电话+8613912345678", "联系电话+86139****5678"),
            ("手机 138 1234 5678 300 元", "手机 138 **** 5678 300 元"),
            ("0086-139-1234-5678", "0086-139-****-5678"),
            (
                "电话13912345678、13812345678",
                "电话139****5678、138****5678",
            ),
        ] {
            assert_eq!(mask_text(text, FIRM), masked, "{text}");
        }
    }

    #[test]
    fn parts_of_an_id_in_a_persons_text_are_masked_r_rel_2() {
        let out = mask_text("身份证前六位211382", PERSON);
        assert!(!out.contains("211382"), "{out}");
        let out = mask_text("后十二位198002290134", PERSON);
        assert!(!out.contains("19800229"), "{out}");
        let out = mask_text("生日19800229", PERSON);
        assert!(!out.contains("19800229"), "{out}");
        // A firm's text keeps them: a region code and a date are not personal there;
        // nor does the usage log mask them (its details name regions by code).
        assert_eq!(mask_text("区划211382", FIRM), "区划211382");
        assert_eq!(
            mask_text("forwarded to 210000; answered by 210000", Masking::LOG),
            "forwarded to 210000; answered by 210000"
        );
    }

    #[test]
    fn free_text_is_scrubbed_but_the_subject_stays_r_data_3() {
        let mut e = UsageEntry::new("credit://agency/211382/bank", Action::Query, "Query", 0)
            .refused(
                tonic::Code::InvalidArgument,
                "fields.13812345678",
                "R-REL-6",
                "unknown purpose 13812345678",
            );
        e.subject = Some("211382198002290134".into());
        e.purpose = Some("13812345678".into());
        e.detail = "reference: 身份证 211382198002290134（王建国）".into();
        e.scrub_free_text_naming(&["王建国"]);
        assert_eq!(e.subject.as_deref(), Some("211382198002290134"));
        assert_eq!(e.purpose.as_deref(), Some("138****5678"));
        assert_eq!(e.detail, "reference: 身份证 2113**********0134（王**）");
        let Outcome::Refused { message, field, .. } = &e.outcome else {
            panic!("refused")
        };
        assert_eq!(message, "unknown purpose 138****5678");
        assert_eq!(field, "fields.138****5678");
    }
}
