//! Account value types. Each `parse` is the single place its rule lives.

use serde::Serialize;

/// Shortest allowed username.
pub const USERNAME_MIN: usize = 3;
/// Longest allowed username.
pub const USERNAME_MAX: usize = 32;
/// Shortest allowed password, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Longest allowed password, in bytes: bcrypt ignores everything past 72 bytes, so a
/// longer password would silently share a hash with its prefix. Refuse it instead.
pub const PASSWORD_MAX_BYTES: usize = 72;
/// Longest allowed display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Longest allowed e-mail address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// A username: 3–32 characters of `[A-Za-z0-9_.-]`, unique case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Checks the length and alphabet; keeps the case the user chose.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let len = raw.chars().count();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
            return Err(format!(
                "must be {USERNAME_MIN} to {USERNAME_MAX} characters long"
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("may contain only letters, digits, '_', '.' and '-'".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as the user typed it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and look-ups use.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// An e-mail address, stored lower-cased so uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// A pragmatic check: one `@`, a non-empty local part, a dotted domain, no spaces.
    /// Deliverability is not the server's business; typos in shape are.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > EMAIL_MAX {
            return Err(format!("must be 1 to {EMAIL_MAX} characters long"));
        }
        let invalid = || "is not a valid e-mail address".to_owned();
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty()
            || !domain_ok
            || domain.contains('@')
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        Ok(Self(raw.to_lowercase()))
    }

    /// The normalized (lower-cased) address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password, checked for length only: composition rules push users to worse
/// passwords (NIST SP 800-63B); length is what matters.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// At least 8 characters, at most 72 bytes (bcrypt's input limit).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() < PASSWORD_MIN {
            return Err(format!("must be at least {PASSWORD_MIN} characters long"));
        }
        if raw.len() > PASSWORD_MAX_BYTES {
            return Err(format!("must be at most {PASSWORD_MAX_BYTES} bytes long"));
        }
        if raw.trim().is_empty() {
            return Err("must not be blank".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself; call sites are the hashing functions only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The name shown to other users; free text, 1–64 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims, then checks the length and refuses control characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let len = raw.chars().count();
        if !(1..=DISPLAY_NAME_MAX).contains(&len) {
            return Err(format!("must be 1 to {DISPLAY_NAME_MAX} characters long"));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldErrors;

    #[test]
    fn username_accepts_the_allowed_alphabet_and_keeps_case() {
        let name = Username::parse("Alice_01.b-c").expect("valid");
        assert_eq!(name.as_str(), "Alice_01.b-c");
        assert_eq!(name.key(), "alice_01.b-c");
    }

    #[test]
    fn username_length_bounds() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn username_refuses_other_characters() {
        for bad in ["al ice", "alice!", "ålice", "al@ce", "a/b/c", ""] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn email_is_normalized_and_checked() {
        assert_eq!(
            Email::parse(" Bob@Example.COM ").expect("valid").as_str(),
            "bob@example.com"
        );
        for bad in [
            "bob",
            "bob@",
            "@x.io",
            "bob@localhost",
            "b ob@x.io",
            "a@b@c.io",
            "a@.x.io",
            "a@x..io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(250))).is_err());
    }

    #[test]
    fn password_length_rules() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("        ").is_err());
        assert!(Password::parse("long enough").is_ok());
        assert!(Password::parse(&"x".repeat(72)).is_ok());
        assert!(Password::parse(&"x".repeat(73)).is_err());
        // 8 characters but 16 bytes: counted in characters for the minimum.
        assert!(Password::parse("éééééééé").is_ok());
    }

    #[test]
    fn password_debug_hides_the_secret() {
        let password = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn display_name_is_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Ann  ").expect("valid").as_str(),
            "Ann"
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse("bad\u{7}").is_err());
    }

    #[test]
    fn field_errors_collect_every_problem() {
        let mut errors = FieldErrors::new();
        let name = errors.check("username", Username::parse("x"));
        let email = errors.check("email", Email::parse("nope"));
        assert!(name.is_none() && email.is_none());
        assert_eq!(errors.fields().len(), 2);
        assert!(errors.finish(|| ()).is_err());
    }
}
