//! Characters that make text read differently from what it holds: zero-width characters
//! (U+200B..U+200D, U+2060, U+FEFF) and bidirectional controls (U+061C, U+200E, U+200F,
//! U+202A..U+202E, U+2066..U+2069). In an id, a name or a reference they make two values
//! that look the same compare different (a second "张三" beside the first, a resident id
//! that no masking rule recognises), and in free text they reorder what a reader sees.
//! Such input is ambiguous, so it is refused, never cleaned up silently.

/// The first hidden character in `s` and its position (0-based, in characters).
pub fn hidden_char(s: &str) -> Option<(usize, char)> {
    s.chars().enumerate().find(|&(_, c)| name(c).is_some())
}

/// What the character is, when it is one of the hidden ones.
pub fn name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{200B}' => "zero-width space",
        '\u{200C}' => "zero-width non-joiner",
        '\u{200D}' => "zero-width joiner",
        '\u{2060}' => "word joiner",
        '\u{FEFF}' => "zero-width no-break space (byte order mark)",
        '\u{061C}' => "Arabic letter mark (bidi control)",
        '\u{200E}' => "left-to-right mark (bidi control)",
        '\u{200F}' => "right-to-left mark (bidi control)",
        '\u{202A}'..='\u{202E}' => "bidi embedding or override",
        '\u{2066}'..='\u{2069}' => "bidi isolate",
        _ => return None,
    })
}

/// Why `s` is refused, if it holds a hidden character: which one and where, so the
/// provider can find it in a text that looks fine on screen.
pub fn hidden(s: &str) -> Option<String> {
    hidden_char(s).map(|(at, c)| {
        format!(
            "contains an invisible character, {} U+{:04X} at character {}; remove it (invisible and bidi-control characters are refused)",
            name(c).unwrap_or("hidden character"),
            c as u32,
            at + 1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hidden_character_is_found_and_named() {
        for c in [
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{061C}', '\u{200E}',
            '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}',
            '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            let s = format!("张{c}三");
            assert_eq!(hidden_char(&s), Some((1, c)), "U+{:04X}", c as u32);
            let m = hidden(&s).unwrap();
            assert!(m.contains(&format!("U+{:04X}", c as u32)), "{m}");
        }
    }

    #[test]
    fn ordinary_chinese_and_latin_text_passes() {
        for s in [
            "张三",
            "凌市监罚〔2026〕12号",
            "Zhang San-Li",
            "a\tb\nc",
            "（全角）·—",
        ] {
            assert_eq!(hidden(s), None, "{s}");
        }
    }
}
