//! Message search: in one chat (what its history shows) or across every chat I am a
//! member of now, ranked by relevance with the database's own full-text index.

use chat_db::models::{MessageRow, SearchScope};
use chat_domain::ChatId;
use chat_domain::permissions;

use crate::auth::Principal;
use crate::chats::MessageView;
use crate::chats::{access, denied};
use crate::pagination::{self, Page};
use crate::{AppContext, ServiceError, rate_limit};

/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Words of a search used at most (the rest are ignored).
pub const MAX_WORDS: usize = 8;
/// How deep paging goes: results past this many are not served.
pub const MAX_RESULTS: i64 = 1000;

/// A search's parameters.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The words to find (every one must be in a message; each may begin a longer word).
    pub q: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The words of `q`: runs of letters and digits, at most [`MAX_WORDS`], as typed (each
/// engine folds their case as it folded the messages'). Everything else (quotes,
/// operators, punctuation) separates words, so no search text is an index query of its
/// own.
fn words(q: Option<&str>) -> Result<Vec<String>, ServiceError> {
    let text = pagination::search_text("q", q, MAX_QUERY_CHARS)?
        .ok_or_else(|| ServiceError::invalid("q", "is required"))?;
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        return Err(ServiceError::invalid(
            "q",
            "must contain a word (letters or digits)",
        ));
    }
    Ok(words)
}

/// Where a page starts: the cursor holds how many results came before it.
fn offset(cursor: Option<&str>) -> Result<i64, ServiceError> {
    let Some(cursor) = cursor else { return Ok(0) };
    pagination::decode_cursor(cursor)?
        .strip_prefix("o:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| (0..MAX_RESULTS).contains(n))
        .ok_or_else(|| ServiceError::invalid("cursor", "is not a cursor this server issued"))
}

async fn run(
    ctx: &AppContext,
    principal: &Principal,
    scope: SearchScope,
    query: &SearchQuery,
) -> Result<Page<MessageView>, ServiceError> {
    let words = words(query.q.as_deref())?;
    let limit = pagination::limit(query.limit)?;
    let start = offset(query.cursor.as_deref())?;
    ctx.limits
        .check(rate_limit::SEARCH, &format!("user:{}", principal.user_id))?;
    // One row past the page says whether there is more, within MAX_RESULTS.
    let wanted = (limit + 1).min(MAX_RESULTS - start);
    let rows = MessageRow::search(&ctx.store.db, &words, scope, wanted, start).await?;
    let more = rows.len() as i64 > limit;
    let mut items: Vec<MessageView> = rows
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .map(MessageView::from)
        .collect();
    crate::reactions::attach(ctx, principal.user_id, items.iter_mut()).await?;
    let next = start + items.len() as i64;
    Ok(Page {
        next_cursor: (more && next < MAX_RESULTS)
            .then(|| pagination::encode_cursor(&format!("o:{next}"))),
        items,
    })
}

/// Messages of one chat matching `query`, best first: for whoever may read its history
/// (members; site admins for groups).
pub async fn search_chat(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    query: SearchQuery,
) -> Result<Page<MessageView>, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    run(ctx, principal, SearchScope::Chat(chat_id.0), &query).await
}

/// Messages of every chat I am a member of now matching `query`, best first (each with
/// its `chat_id`). Chats I left or was removed from are not searched.
pub async fn search_my_chats(
    ctx: &AppContext,
    principal: &Principal,
    query: SearchQuery,
) -> Result<Page<MessageView>, ServiceError> {
    run(
        ctx,
        principal,
        SearchScope::MemberOf(principal.user_id.0),
        &query,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letters_and_digits_lower_cased() {
        let got = words(Some("  Hello, \"WORLD\" OR x* -dröp 42 ")).ok();
        assert_eq!(
            got,
            Some(
                ["Hello", "WORLD", "OR", "x", "dröp", "42"]
                    .map(str::to_owned)
                    .to_vec()
            )
        );
        assert!(words(Some("*** ---")).is_err());
        assert!(words(Some("   ")).is_err());
        assert!(words(None).is_err());
        assert_eq!(
            words(Some("a b c d e f g h i j")).map(|w| w.len()).ok(),
            Some(MAX_WORDS)
        );
    }

    #[test]
    fn offsets_come_only_from_issued_cursors() {
        assert_eq!(offset(None).ok(), Some(0));
        let issued = pagination::encode_cursor("o:50");
        assert_eq!(offset(Some(&issued)).ok(), Some(50));
        for bad in ["o:-1", "o:1000", "50", "o:x"] {
            assert!(
                offset(Some(&pagination::encode_cursor(bad))).is_err(),
                "{bad}"
            );
        }
    }
}
