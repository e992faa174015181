//! Typed reads of `CHAT_*` keys. Each read names its key, applies its default and its
//! bounds, and turns any failure into the one-line [`ConfigError`] the server stops with.

use std::cell::RefCell;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use super::{ConfigError, Sources};

/// A configuration error for `key`.
pub(super) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Reads typed values out of [`Sources`], remembering which keys were asked for (so a
/// test can prove every listed key is read and every read key is listed).
pub(super) struct Reader<'a> {
    sources: &'a Sources,
    read: RefCell<Vec<&'static str>>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(sources: &'a Sources) -> Self {
        Reader {
            sources,
            read: RefCell::new(Vec::new()),
        }
    }

    /// The keys read so far.
    #[cfg(test)]
    pub(super) fn keys_read(&self) -> Vec<&'static str> {
        self.read.borrow().clone()
    }

    /// The value of `key`, trimmed; `None` when unset or blank.
    pub(super) fn raw(&self, key: &'static str) -> Option<&'a str> {
        self.read.borrow_mut().push(key);
        self.sources.get(key).map(str::trim)
    }

    /// `key` exactly as written (a secret's spaces are part of it); `None` when unset or
    /// blank.
    pub(super) fn secret(&self, key: &'static str) -> Option<String> {
        self.read.borrow_mut().push(key);
        self.sources.get(key).map(str::to_owned)
    }

    /// `key` through `parse`, or `None` when unset.
    pub(super) fn optional<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(key)
            .map(parse)
            .transpose()
            .map_err(|m| invalid(key, m))
    }

    /// `key` through `parse`, or `default` through `parse` when unset.
    pub(super) fn parsed<T>(
        &self,
        key: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(self.raw(key).unwrap_or(default)).map_err(|m| invalid(key, m))
    }

    /// A whole number within `range`.
    pub(super) fn number<T>(
        &self,
        key: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
    {
        let Some(raw) = self.raw(key) else {
            return Ok(default);
        };
        raw.parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                invalid(
                    key,
                    format!("must be a number from {} to {}", range.start(), range.end()),
                )
            })
    }

    /// A duration (see [`parse_duration`]) within `range`.
    pub(super) fn duration(
        &self,
        key: &'static str,
        default: &str,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        within(
            key,
            self.parsed(key, default, parse_duration)?,
            range,
            show_duration,
        )
    }

    /// A size in bytes (see [`parse_bytes`]) within `range`.
    pub(super) fn bytes(
        &self,
        key: &'static str,
        default: &str,
        range: RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        within(
            key,
            self.parsed(key, default, parse_bytes)?,
            range,
            show_bytes,
        )
    }

    /// A boolean (see [`parse_bool`]).
    pub(super) fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.optional(key, parse_bool).map(|v| v.unwrap_or(default))
    }

    /// One of named `choices` (case-insensitive; a choice may have several names, the
    /// first is the one error messages list).
    pub(super) fn choice<T: Copy>(
        &self,
        key: &'static str,
        default: T,
        choices: &[(&[&str], T)],
    ) -> Result<T, ConfigError> {
        let Some(raw) = self.raw(key) else {
            return Ok(default);
        };
        let wanted = raw.to_ascii_lowercase();
        choices
            .iter()
            .find(|(names, _)| names.contains(&wanted.as_str()))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = choices
                    .iter()
                    .filter_map(|(n, _)| n.first())
                    .copied()
                    .collect();
                invalid(key, format!("'{raw}' is not one of {}", names.join(", ")))
            })
    }
}

/// `value` if within `range`; otherwise the error naming the bounds as `show` writes them.
fn within<T: PartialOrd + Copy>(
    key: &str,
    value: T,
    range: RangeInclusive<T>,
    show: fn(T) -> String,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            format!(
                "must be between {} and {}",
                show(*range.start()),
                show(*range.end())
            ),
        ))
    }
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d`, `500ms`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration (e.g. 900, 15m, 30d)"))?;
    let seconds = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit '{other}' (use ms, s, m, h or d)")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{raw}' is too long"))
}

/// Parses a size in bytes: `1048576`, `512KiB`, `1MiB` (also `k`, `KB`, `M`, `MB`:
/// binary multiples).
pub fn parse_bytes(raw: &str) -> Result<usize, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a size (e.g. 1048576, 512KiB, 1MiB)"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        other => return Err(format!("unknown unit '{other}' (use KiB or MiB)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{raw}' is too large"))
}

/// Parses `true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("'{other}' is not a boolean (true/false, on/off)")),
    }
}

/// A duration the way [`parse_duration`] reads it, in its largest whole unit.
fn show_duration(d: Duration) -> String {
    let (secs, millis) = (d.as_secs(), d.subsec_millis());
    match secs {
        _ if millis != 0 || secs == 0 => format!("{}ms", d.as_millis()),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// A size the way [`parse_bytes`] reads it, in its largest whole unit.
fn show_bytes(n: usize) -> String {
    match n {
        _ if n >= 1 << 20 && n.is_multiple_of(1 << 20) => format!("{}MiB", n >> 20),
        _ if n >= 1 << 10 && n.is_multiple_of(1 << 10) => format!("{}KiB", n >> 10),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn bounds_read_back_in_the_units_they_are_written_in() {
        assert_eq!(show_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(show_duration(Duration::from_secs(10)), "10s");
        assert_eq!(show_duration(Duration::from_secs(600)), "10m");
        assert_eq!(show_duration(Duration::from_secs(86_400)), "1d");
        assert_eq!(show_bytes(16 << 10), "16KiB");
        assert_eq!(show_bytes(1 << 30), "1024MiB");
        assert_eq!(show_bytes(100), "100");
        for shown in ["100ms", "10s", "10m", "1d"] {
            assert_eq!(
                parse_duration(shown).map(show_duration).as_deref(),
                Ok(shown)
            );
        }
    }
}
