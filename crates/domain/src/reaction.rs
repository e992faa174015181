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
    /// Checks the sequence's shape: a keycap (`1️⃣`), a flag (two regional indicators), a
    /// subdivision flag (🏴 and tag letters ending in a cancel tag), or emoji joined by
    /// zero-width joiners, each with at most one skin tone and one variation selector.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars: Vec<char> = raw.chars().collect();
        if chars.is_empty() || chars.len() > EMOJI_MAX_CHARS || !well_formed(&chars) {
            return Err("must be one emoji (a short Unicode emoji sequence)".to_owned());
        }
        Ok(Emoji(raw.to_owned()))
    }

    /// The sequence.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn well_formed(chars: &[char]) -> bool {
    match chars {
        // Keycap: digit, `#` or `*`, an optional variation selector, the keycap mark.
        [base, '\u{FE0F}', '\u{20E3}'] | [base, '\u{20E3}'] => {
            base.is_ascii_digit() || *base == '#' || *base == '*'
        }
        // A country's flag.
        [a, b] if is_regional(*a) && is_regional(*b) => true,
        // A subdivision's flag: 🏴, tag letters, the cancel tag.
        ['\u{1F3F4}', tags @ .., '\u{E007F}'] if !tags.is_empty() => {
            tags.iter().all(|c| matches!(c, '\u{E0020}'..='\u{E007E}'))
        }
        _ => chars.split(|c| *c == '\u{200D}').all(element_well_formed),
    }
}

/// One emoji of a ZWJ sequence: a base, then at most one skin tone and at most one
/// variation selector.
fn element_well_formed(element: &[char]) -> bool {
    let Some((base, modifiers)) = element.split_first() else {
        return false;
    };
    let tones = modifiers.iter().filter(|c| is_skin_tone(**c)).count();
    let selectors = modifiers
        .iter()
        .filter(|c| matches!(c, '\u{FE0E}' | '\u{FE0F}'))
        .count();
    is_base(*base) && tones <= 1 && selectors <= 1 && tones + selectors == modifiers.len()
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
        | '\u{203C}' | '\u{2049}' | '\u{2934}' | '\u{2935}' | '\u{24C2}' | '\u{3030}'
        | '\u{303D}' | '\u{3297}'
        | '\u{3299}' | '\u{00A9}' | '\u{00AE}')
        && !is_skin_tone(c)
        && !is_regional(c)
}

fn is_skin_tone(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}')
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
            "⤴️",
            "❤️‍🔥",
            "🧑🏽‍💻",
            "🏳️‍⚧️",
            "🇺🇳",
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
            "👍🏽🏽",
            "👍\u{FE0F}\u{FE0F}",
            "🇫",
            "🇫🇷🇩🇪",
            "👍\u{E0067}\u{E007F}",
            "🏴\u{E007F}",
            "1\u{20E3}\u{20E3}",
            "é",
            "\u{0}",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }
}
