//! `limit` + opaque `cursor` pagination, shared by every list endpoint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServiceError;

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most items a page may hold.
pub const MAX_LIMIT: i64 = 200;

/// One page of a list and the cursor of the next (`null` on the last page).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Checks `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]).
pub fn limit(requested: Option<i64>) -> Result<i64, ServiceError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ServiceError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// Checks a free-text search parameter: trimmed, at most `max` characters, no
/// control characters (PostgreSQL cannot even compare text holding a NUL).
pub fn search_text<'a>(
    field: &str,
    raw: Option<&'a str>,
    max: usize,
) -> Result<Option<&'a str>, ServiceError> {
    let Some(text) = raw.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(text))
}

/// Wraps a position into an opaque cursor.
pub fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// Unwraps a cursor made by [`encode_cursor`]; anything else is a 422 on `cursor`.
pub fn decode_cursor(cursor: &str) -> Result<String, ServiceError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|s| !s.chars().any(char::is_control))
        .ok_or_else(|| ServiceError::invalid("cursor", "is not a cursor this server issued"))
}

/// Unwraps an id cursor (lists ordered by id).
pub fn decode_id_cursor(cursor: &str) -> Result<i64, ServiceError> {
    decode_cursor(cursor)?
        .parse()
        .map_err(|_| ServiceError::invalid("cursor", "is not a cursor this server issued"))
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says there is more.
pub fn page<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    position: impl Fn(&R) -> String,
    view: impl FnMut(R) -> T,
) -> Page<T> {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if has_more {
        rows.last().map(|r| encode_cursor(&position(r)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some(200)).ok(), Some(200));
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(201)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(
            decode_cursor(&encode_cursor("bob")).ok().as_deref(),
            Some("bob")
        );
        assert!(decode_cursor("***").is_err());
    }

    #[test]
    fn page_uses_the_extra_row_as_a_has_more_flag() {
        let full = page(vec![1, 2, 3], 2, |n| n.to_string(), |n| n * 10);
        assert_eq!(full.items, vec![10, 20]);
        assert_eq!(
            full.next_cursor
                .as_deref()
                .map(decode_cursor)
                .and_then(Result::ok)
                .as_deref(),
            Some("2")
        );
        let last = page(vec![1, 2], 2, |n| n.to_string(), |n| n);
        assert_eq!(last.next_cursor, None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn positions_without_control_characters_round_trip(position in "\\PC{0,80}") {
                let cursor = encode_cursor(&position);
                prop_assert_eq!(decode_cursor(&cursor).ok(), Some(position));
                // Opaque and safe in a query string as is.
                prop_assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }

            #[test]
            fn positions_with_control_characters_are_refused(
                before in "\\PC{0,10}",
                control in "\\p{Cc}",
                after in "\\PC{0,10}",
            ) {
                let cursor = encode_cursor(&format!("{before}{control}{after}"));
                prop_assert!(decode_cursor(&cursor).is_err());
            }

            #[test]
            fn id_cursors_round_trip(id in any::<i64>()) {
                prop_assert_eq!(decode_id_cursor(&encode_cursor(&id.to_string())).ok(), Some(id));
            }

            /// Whatever a client sends as `cursor`: no panic, and what is accepted is
            /// exactly a cursor this server would have issued for that position.
            #[test]
            fn any_cursor_text_is_decoded_or_refused_without_panicking(
                cursor in prop_oneof!["\\PC{0,60}", "[A-Za-z0-9_=+/-]{0,60}"],
            ) {
                if let Ok(position) = decode_cursor(&cursor) {
                    prop_assert!(!position.chars().any(char::is_control));
                    prop_assert_eq!(encode_cursor(&position), cursor.clone());
                }
                let _ = decode_id_cursor(&cursor);
            }
        }
    }
}
