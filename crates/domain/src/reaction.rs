//! Reactions: which emoji a reaction may be, and how many one message may carry.

/// Most distinct emoji on one message (each may be chosen by any number of members).
pub const MAX_DISTINCT_REACTIONS: usize = 20;
/// Most code points in one reaction: enough for a family or a flag of a region
/// (`🏴` + 5 tag letters + cancel tag), short of free text.
pub const EMOJI_MAX_CHARS: usize = 10;

/// A reaction: one short Unicode emoji sequence — an emoji, optionally with a skin tone,
/// variation selector, joined (ZWJ) emoji, keycap, flag pair or tag sequence. Checked by
/// code-point classes, not against a list of named emoji: a new emoji of the blocks
/// below is accepted as soon as clients can draw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

impl Emoji {
    /// Checks the sequence's shape and characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || "must be one emoji (a short Unicode emoji sequence)".to_owned();
        let chars: Vec<char> = raw.chars().collect();
        if chars.is_empty() || chars.len() > EMOJI_MAX_CHARS {
            return Err(invalid());
        }
        let first = chars[0];
        let keycap = chars.len() >= 2
            && (first.is_ascii_digit() || first == '#' || first == '*')
            && chars[1..]
                .iter()
                .all(|c| matches!(c, '\u{FE0F}' | '\u{20E3}'))
            && chars.contains(&'\u{20E3}');
        if keycap {
            return Ok(Emoji(raw.to_owned()));
        }
        if !is_base(first) {
            return Err(invalid());
        }
        let mut previous = first;
        for &c in &chars[1..] {
            let fits = if previous == '\u{200D}' {
                is_base(c)
            } else {
                c == '\u{200D}' || is_modifier(c) || (is_regional(previous) && is_regional(c))
            };
            if !fits {
                return Err(invalid());
            }
            previous = c;
        }
        if previous == '\u{200D}' {
            return Err(invalid());
        }
        Ok(Emoji(raw.to_owned()))
    }

    /// The sequence.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Code points that start an emoji (or follow a zero-width joiner).
fn is_base(c: char) -> bool {
    matches!(c,
        '\u{1F000}'..='\u{1FAFF}'   // pictographs, emoticons, transport, supplemental
        | '\u{2600}'..='\u{27BF}'   // miscellaneous symbols, dingbats
        | '\u{2300}'..='\u{23FF}'   // ⌚ ⌛ ⏩ …
        | '\u{2B00}'..='\u{2BFF}'   // ⬆ ⭐ ⭕ …
        | '\u{2190}'..='\u{21FF}'   // arrows
        | '\u{25A0}'..='\u{25FF}'   // geometric shapes
        | '\u{2100}'..='\u{214F}'   // ™ ℹ
        | '\u{203C}' | '\u{2049}' | '\u{24C2}' | '\u{3030}' | '\u{303D}' | '\u{3297}'
        | '\u{3299}' | '\u{00A9}' | '\u{00AE}')
        && !is_modifier(c)
}

/// Code points that change the one before: skin tones, variation selectors, tags.
fn is_modifier(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}' | '\u{FE0E}' | '\u{FE0F}' | '\u{E0020}'..='\u{E007F}')
}

fn is_regional(c: char) -> bool {
    matches!(c, '\u{1F1E6}'..='\u{1F1FF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_sequences_are_accepted() {
        for ok in [
            "👍",
            "❤️",
            "❤",
            "😂",
            "👍🏽",
            "👩‍👩‍👧‍👦",
            "🏳️‍🌈",
            "🇫🇷",
            "1️⃣",
            "#⃣",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
            "⭐",
            "™️",
            "🫠",
        ] {
            assert_eq!(
                Emoji::parse(ok).map(|e| e.as_str().to_owned()),
                Ok(ok.to_owned()),
                "{ok}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "a",
            "ok",
            "1",
            " 👍",
            "👍 ",
            "👍a",
            "<script>",
            "\u{200D}👍",
            "👍\u{200D}",
            "\u{FE0F}",
            "🏽",
            "👍👍👍👍👍👍👍👍👍👍👍",
            "é",
            "\u{0}",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }
}
