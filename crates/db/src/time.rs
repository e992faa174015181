//! Reading stored timestamps without a format-string parser.
//!
//! SQLite keeps `TIMESTAMP` columns as text (`2026-12-03 11:21:19.123456`, what diesel
//! writes). diesel reads them back with chrono's `parse_from_str`, which interprets its
//! format string anew for every value: ~4 % of the server's time when it serves history
//! pages (50 rows each). [`StoredTime`] reads that one shape directly and hands anything
//! else to diesel's own parser, so every value diesel accepts is still accepted.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::Pg;
use diesel::sql_types::Timestamp;
use diesel::sqlite::Sqlite;

/// A `TIMESTAMP` column as read from either backend; use it on a `Queryable` field
/// with `#[diesel(deserialize_as = StoredTime)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub struct StoredTime(pub NaiveDateTime);

impl From<StoredTime> for NaiveDateTime {
    fn from(time: StoredTime) -> Self {
        time.0
    }
}

impl FromSql<Timestamp, Sqlite> for StoredTime {
    fn from_sql(
        mut value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        if let Some(time) = parse_stored(value.read_text()) {
            return Ok(StoredTime(time));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(StoredTime)
    }
}

impl FromSql<Timestamp, Pg> for StoredTime {
    fn from_sql(
        value: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(StoredTime)
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1–9 fraction digits; `None` for any
/// other shape or an impossible date or time (left to diesel's parser).
fn parse_stored(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let digits = |bytes: &[u8]| {
        bytes.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(&b[0..4])?).ok()?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let scale = 10u32.pow(9 - u32::try_from(fraction.len()).ok()?);
            digits(fraction)? * scale
        }
        _ => return None,
    };
    date.and_hms_nano_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        nanos,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_parse(text: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(text, "%F %T%.f").ok()
    }

    #[test]
    fn agrees_with_chrono_on_what_diesel_writes() {
        let samples = [
            "2026-12-03 11:21:19.123456",
            "2026-12-03 11:21:19",
            "2026-12-03 11:21:19.1",
            "2026-12-03 11:21:19.000000001",
            "1999-12-31 23:59:59.999999",
            "2024-02-29 00:00:00.5",
            "0001-01-01 00:00:00",
        ];
        for text in samples {
            assert_eq!(parse_stored(text), chrono_parse(text), "{text}");
            assert!(parse_stored(text).is_some(), "{text}");
        }
        // What `crate::now()` produces, written the way diesel writes it.
        let now = crate::now();
        let written = now.format("%F %T%.f").to_string();
        assert_eq!(parse_stored(&written), Some(now));
    }

    #[test]
    fn other_shapes_are_left_to_diesel() {
        for text in [
            "2026-12-03T11:21:19",
            "2026-12-03 11:21",
            "2026-12-03 11:21:19Z",
            "2026-12-03 11:21:19+01:00",
            "2026-12-03 11:21:19.",
            "2026-12-03 11:21:19.1234567890",
            "2026-02-30 11:21:19",
            "2026-12-03 24:00:00",
            "2026-12-03 11:21:60",
            "2026-1a-03 11:21:19",
            "2461377.5",
            "",
        ] {
            assert_eq!(parse_stored(text), None, "{text}");
        }
    }

    #[test]
    fn sqlite_values_of_every_shape_are_read() -> Result<(), Box<dyn std::error::Error>> {
        use diesel::dsl::sql;
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        let mut conn = SqliteConnection::establish(":memory:")?;
        let mut read = |literal: &str| -> Result<NaiveDateTime, diesel::result::Error> {
            diesel::select(sql::<Timestamp>(literal))
                .get_result::<StoredTime>(&mut conn)
                .map(NaiveDateTime::from)
        };
        let expected = NaiveDate::from_ymd_opt(2026, 12, 3)
            .and_then(|d| d.and_hms_micro_opt(11, 21, 19, 250_000))
            .ok_or("bad date")?;
        // The fast path, and shapes only diesel's parser knows.
        assert_eq!(read("'2026-12-03 11:21:19.25'")?, expected);
        assert_eq!(read("'2026-12-03T11:21:19.25'")?, expected);
        assert_eq!(read("'2026-12-03 11:21:19.25Z'")?, expected);
        assert!(read("'not a time'").is_err());
        Ok(())
    }
}
