//! Chats, roles and message value types.

use serde::{Deserialize, Serialize};

/// Longest message, in characters after trimming (SPEC §3).
pub const MESSAGE_MAX_CHARS: usize = 4000;
/// Longest group name.
pub const CHAT_NAME_MAX: usize = 100;
/// Longest group description.
pub const DESCRIPTION_MAX: usize = 1000;
/// Longest client-chosen idempotency key.
pub const CLIENT_ID_MAX: usize = 64;

/// A one-to-one or a group chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// Exactly two members, no roles that matter.
    Direct,
    /// Named, with an owner, admins and members.
    Group,
}

/// Who may join a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone may find and join it.
    Public,
    /// Members are added by the owner and admins.
    Private,
}

/// A member's role in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Plain member.
    Member,
    /// Manages members and settings.
    Admin,
    /// One per group; everything an admin can, plus roles, deletion, hand-over.
    Owner,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $ty {
            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }

            /// Parses the stored name.
            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($text => Ok(Self::$variant),)*
                    other => Err(format!("'{other}' is not one of: {}", [$($text),*].join(", "))),
                }
            }
        }
    };
}

text_enum!(ChatKind { Direct = "direct", Group = "group" });
text_enum!(Visibility { Public = "public", Private = "private" });
text_enum!(Role { Member = "member", Admin = "admin", Owner = "owner" });

fn bounded_text(raw: &str, min: usize, max: usize) -> Result<String, String> {
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len < min || len > max {
        return Err(if min == 0 {
            format!("must be at most {max} characters long")
        } else {
            format!("must be {min} to {max} characters long")
        });
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// A group's name: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatName(String);

impl ChatName {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_text(raw, 1, CHAT_NAME_MAX).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A group's description: up to 1000 characters after trimming (empty clears it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_text(raw, 0, DESCRIPTION_MAX).map(Self)
    }

    /// The text (`None` when empty).
    pub fn into_option(self) -> Option<String> {
        (!self.0.is_empty()).then_some(self.0)
    }
}

/// A message's text: 1–4000 characters after trimming; line breaks and tabs allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".to_owned());
        }
        bounded_text(trimmed, 1, MESSAGE_MAX_CHARS).map(Self)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen idempotency key: 1–64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// Checks the length and alphabet.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > CLIENT_ID_MAX || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "must be 1 to {CLIENT_ID_MAX} printable ASCII characters"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Most distinct `@names` one message may mention; later ones are not looked up.
pub const MAX_MENTIONS: usize = 50;

/// The usernames a text mentions (`@name`), case-folded, distinct, in order of first
/// mention. A mention starts at an `@` not preceded by a letter, digit or username
/// character (so `ann@example.com` mentions no one) and takes the longest run of
/// username characters after it, less trailing `.` and `-` (sentence punctuation);
/// runs that cannot be usernames are skipped.
pub fn mentioned_names(text: &str) -> Vec<String> {
    // Most messages name no one: one byte scan, no per-character walk.
    if !text.contains('@') {
        return Vec::new();
    }
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut names: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let starts = c == '@' && !previous.is_some_and(|p| is_name_char(p) || p.is_alphanumeric());
        previous = Some(c);
        if !starts {
            continue;
        }
        let tail = &text[at + 1..];
        let end = tail.find(|c: char| !is_name_char(c)).unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches(['.', '-']);
        if let Ok(name) = crate::Username::parse(name) {
            let key = name.key();
            if !names.contains(&key) {
                names.push(key);
                if names.len() == MAX_MENTIONS {
                    break;
                }
            }
        }
    }
    names
}

/// The direct-chat key of a user pair, the same whichever side asks.
pub fn direct_key(a: i64, b: i64) -> String {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in [Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Visibility::parse("public"), Ok(Visibility::Public));
        assert!(Visibility::parse("secret").is_err());
        assert_eq!(ChatKind::parse("direct"), Ok(ChatKind::Direct));
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
    }

    #[test]
    fn mentions_are_found_where_a_name_follows_an_at() {
        assert_eq!(
            mentioned_names("hi @Ann, @bob.smith. and @ann again (@carol-) @x @dave_99!"),
            vec!["ann", "bob.smith", "carol", "dave_99"]
        );
        assert!(mentioned_names("mail ann@example.com or @ or @@ or @é").is_empty());
        assert_eq!(mentioned_names("@eve"), vec!["eve"]);
        assert_eq!(mentioned_names("(@eve)"), vec!["eve"]);
        assert_eq!(mentioned_names("é@eve"), Vec::<String>::new());
        let many: String = (0..60).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mentioned_names(&many).len(), MAX_MENTIONS);
        let long = format!("@{}", "a".repeat(40));
        assert!(mentioned_names(&long).is_empty(), "longer than a username");
    }

    #[test]
    fn message_bodies() {
        assert_eq!(
            MessageBody::parse("  hi\nthere  ").map(|m| m.as_str().to_owned()),
            Ok("hi\nthere".to_owned())
        );
        assert!(MessageBody::parse(" \n\t ").is_err());
        assert!(
            MessageBody::parse(&"é".repeat(4000)).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert!(MessageBody::parse(&"x".repeat(4001)).is_err());
        assert!(MessageBody::parse("bell\u{7}").is_err());
    }

    #[test]
    fn chat_names_descriptions_and_client_ids() {
        assert!(ChatName::parse("  ").is_err());
        assert_eq!(
            ChatName::parse(" Rustaceans ").map(|n| n.as_str().to_owned()),
            Ok("Rustaceans".to_owned())
        );
        assert!(ChatName::parse(&"n".repeat(101)).is_err());
        assert_eq!(
            Description::parse("  ").map(Description::into_option),
            Ok(None)
        );
        assert!(Description::parse(&"d".repeat(1001)).is_err());
        assert!(ClientId::parse("abc-123").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("has space").is_err());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn direct_keys_ignore_order() {
        assert_eq!(direct_key(7, 3), "3:7");
        assert_eq!(direct_key(3, 7), "3:7");
    }
}
