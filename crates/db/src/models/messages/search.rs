//! Full-text search over message text, with each engine's own index: SQLite's FTS5
//! table `messages_fts`, PostgreSQL's generated `messages.search` tsvector with a GIN
//! index. Both are kept in step with sends, edits and deletions by the database itself
//! (triggers; a generated column), so nothing in the write path changes.

use diesel::sql_types::{BigInt, Text};

use super::*;

/// Whose messages a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    /// One chat.
    Chat(i64),
    /// Every chat the user is a member of now.
    MemberOf(i64),
}

/// Whether a search word also matches longer words it begins.
fn is_prefix(word: &str) -> bool {
    word.chars().count() >= 3
}

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

impl MessageRow {
    /// Messages of `scope` holding every one of `words` (a word of three characters or
    /// more may also begin a longer word: shorter prefixes would match most of the
    /// index), deleted ones never; the most relevant first (the engine's ranking: BM25 on
    /// SQLite, `ts_rank` on PostgreSQL), then the newest. `words` must be made of
    /// letters and digits only (the caller splits the user's text).
    pub async fn search(
        pool: &DbPool,
        words: &[String],
        scope: SearchScope,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageEntry>, DbError> {
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let (within, scope_id) = match scope {
            SearchScope::Chat(chat) => ("m.chat_id = ", chat),
            SearchScope::MemberOf(user) => (
                "m.chat_id IN (SELECT chat_id FROM memberships WHERE user_id = ",
                user,
            ),
        };
        let close = if matches!(scope, SearchScope::MemberOf(_)) {
            ")"
        } else {
            ""
        };
        let (sql, query) = match pool {
            DbPool::Postgres(_) => (
                format!(
                    "SELECT m.id FROM messages m \
                     WHERE m.search @@ to_tsquery('simple', $1) AND m.deleted_at IS NULL \
                     AND {within}$2{close} \
                     ORDER BY ts_rank(m.search, to_tsquery('simple', $1)) DESC, m.id DESC \
                     LIMIT $3 OFFSET $4"
                ),
                words
                    .iter()
                    .map(|w| format!("{w}{}", if is_prefix(w) { ":*" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(" & "),
            ),
            DbPool::Sqlite(_) => (
                format!(
                    "SELECT m.id AS id FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid \
                     WHERE messages_fts MATCH ? AND m.deleted_at IS NULL \
                     AND {within}?{close} \
                     ORDER BY messages_fts.rank, m.id DESC \
                     LIMIT ? OFFSET ?"
                ),
                words
                    .iter()
                    .map(|w| format!("\"{w}\"{}", if is_prefix(w) { "*" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
        };
        let hits: Vec<Hit> = with_conn!(pool, conn => {
            diesel::sql_query(sql.as_str())
                .bind::<Text, _>(query.as_str())
                .bind::<BigInt, _>(scope_id)
                .bind::<BigInt, _>(limit)
                .bind::<BigInt, _>(offset)
                .load(conn)
                .await?
        });
        let ids: Vec<i64> = hits.iter().map(|h| h.id).collect();
        let rows: Vec<(MessageRow, Option<String>)> = load_rows!(
            pool,
            messages::table
                .left_join(users::table.on(messages::sender_id.eq(users::id.nullable())))
                .filter(messages::id.eq_any(ids.clone()))
                .select((MessageRow::as_select(), users::username.nullable()))
        );
        let mut by_id: std::collections::HashMap<i64, (MessageRow, Option<String>)> =
            rows.into_iter().map(|r| (r.0.id, r)).collect();
        Ok(ids
            .iter()
            .filter_map(|id| by_id.remove(id))
            .map(|(message, sender)| MessageEntry { message, sender })
            .collect())
    }
}
