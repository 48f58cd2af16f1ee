//! Which characters names and keys may hold. Control characters (Unicode
//! general category Cc) and format characters (Cf: right-to-left override,
//! zero-width space, soft hyphen, tag characters, …) are invisible or
//! reorder how the text around them is shown, so two names that print the
//! same could differ, or a name could print as something else. Names,
//! user ids and idempotency keys refuse both, and the line and paragraph
//! separators U+2028/U+2029; free text (a description) refuses controls
//! other than newline and tab, and the bidirectional controls.

/// Unicode 15.1's general category Cf (`DerivedGeneralCategory.txt`), as
/// inclusive ranges.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a format character (general category Cf).
pub fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The line and paragraph separators (general categories Zl and Zp): they
/// break a name across lines wherever it is shown, like a newline.
const SEPARATORS: [char; 2] = ['\u{2028}', '\u{2029}'];

/// The first control (Cc), format (Cf), line or paragraph separator (Zl,
/// Zp) character in `text`, which a name or key must not hold.
pub fn invisible_char(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| c.is_control() || is_format(c) || SEPARATORS.contains(&c))
}

/// The first bidirectional embedding, override or isolate control
/// (U+202A–U+202E, U+2066–U+2069) in `text`. Free text (a description) may
/// hold other format characters (a zero-width joiner inside an emoji), but
/// not these: they reorder how the text around them is shown, so a
/// description could display as something other than what it says (the
/// "Trojan Source" attack, CVE-2021-42574).
pub fn bidi_control(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// `c` as `U+XXXX`, for error messages (the character itself would not
/// show).
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_are_found_and_letters_are_not() {
        for c in [
            '\u{00AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{1343F}',
        ] {
            assert!(is_format(c), "{}", code_point(c));
        }
        for c in ['a', 'é', 'ß', '日', '\u{2065}', '\u{FFFC}', '😀', ' '] {
            assert!(!is_format(c), "{}", code_point(c));
        }
        assert!(
            FORMAT.windows(2).all(|w| w[0].1 < w[1].0),
            "sorted, disjoint"
        );
    }

    #[test]
    fn the_first_invisible_character_is_named() {
        assert_eq!(invisible_char("Daily Digest"), None);
        assert_eq!(invisible_char("evil\u{202E}gpj.exe"), Some('\u{202E}'));
        assert_eq!(invisible_char("a\tb"), Some('\t'));
        assert_eq!(code_point('\u{200B}'), "U+200B");
        assert_eq!(invisible_char("two\u{2028}lines"), Some('\u{2028}'));
        assert_eq!(invisible_char("two\u{2029}paragraphs"), Some('\u{2029}'));
    }

    #[test]
    fn free_text_keeps_joiners_but_not_bidi_controls() {
        assert_eq!(bidi_control("family 👨\u{200D}👩\u{200D}👧"), None);
        assert_eq!(bidi_control("Daily\nDigest"), None);
        for c in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            assert_eq!(bidi_control(&format!("a{c}b")), Some(c));
        }
    }
}
