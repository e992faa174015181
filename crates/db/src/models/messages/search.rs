//! Full-text search over message text, with each engine's own index: SQLite's FTS5
//! table `messages_fts` (kept in step with edits and deletions by triggers), and on
//! PostgreSQL the `messages.search` tsvector with a GIN index, which every statement
//! that writes a message's text also writes, from [`lexemes`].

use std::fmt::Write as _;

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

/// The longest lexeme written, in bytes: one under PostgreSQL's 2 047, clear of its
/// boundary (a literal it refuses would fail a whole batch).
const MAX_LEXEME_BYTES: usize = 2046;
/// The most positions PostgreSQL keeps per lexeme, and the highest position.
const MAX_POSITIONS: usize = 256;
const MAX_POSITION: usize = 16_383;

/// `text`'s entry in PostgreSQL's search index, as a `tsvector` literal: its runs of
/// letters and digits, lower-cased, each with the positions where it occurs
/// (`'fox':4 'quick':2,3`), so `ts_rank` still favours the messages most about a word.
/// Words longer than a lexeme may be are left out. The server splits the text, not
/// PostgreSQL's `to_tsvector`: it is the rule the search words follow
/// ([`MessageRow::search`]) whatever the database's locale, and the text parser was ≈ 8 µs
/// of PostgreSQL's CPU per stored message (docs/benchmarks.md).
pub(crate) fn lexemes(text: &str) -> String {
    let mut positions: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    let words = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    for (index, word) in words.enumerate() {
        let word = fold(word);
        if word.len() > MAX_LEXEME_BYTES {
            continue;
        }
        let at = positions.entry(word).or_default();
        if at.len() < MAX_POSITIONS {
            at.push((index + 1).min(MAX_POSITION));
        }
    }
    let mut literal = String::with_capacity(text.len() + 4 * positions.len());
    for (word, at) in positions {
        if !literal.is_empty() {
            literal.push(' ');
        }
        // Letters and digits only: nothing in a word needs escaping inside the quotes.
        literal.push('\'');
        literal.push_str(&word);
        literal.push_str("':");
        for (i, position) in at.iter().enumerate() {
            if i > 0 {
                literal.push(',');
            }
            // Writing into a String cannot fail.
            let _ = write!(literal, "{position}");
        }
    }
    literal
}

/// A word lower-cased the same way in the index and in searches: character by
/// character (no word-final sigma, so a prefix folds like the word it begins), and `İ`
/// to `i` (not `i` + a combining dot), as PostgreSQL and SQLite fold them.
pub(crate) fn fold(word: &str) -> String {
    word.chars()
        .flat_map(|c| {
            let lower = if c == '\u{130}' { 'i' } else { c };
            lower.to_lowercase()
        })
        .collect()
}

/// Keeping a message's search entry in step with a write of its text outside the batch
/// statement (edits, deletions, the one-by-one path), on either engine.
pub(crate) trait SearchIndex {
    /// Indexes message `id` as holding `content` now.
    async fn index_text(&mut self, id: i64, content: &str) -> QueryResult<()>;
}

impl SearchIndex for crate::PgConn {
    async fn index_text(&mut self, id: i64, content: &str) -> QueryResult<()> {
        diesel::sql_query("UPDATE messages SET search = $1::tsvector WHERE id = $2")
            .bind::<Text, _>(lexemes(content))
            .bind::<BigInt, _>(id)
            .execute(self)
            .await?;
        Ok(())
    }
}

impl SearchIndex for crate::SqliteConn {
    /// Nothing: SQLite's triggers follow edits and deletions, and the one-by-one path
    /// indexes its rows in one FTS5 statement after this.
    async fn index_text(&mut self, _id: i64, _content: &str) -> QueryResult<()> {
        Ok(())
    }
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
                     WHERE m.search @@ $1::tsquery AND m.deleted_at IS NULL \
                     AND {within}$2{close} \
                     ORDER BY ts_rank(m.search, $1::tsquery) DESC, m.id DESC \
                     LIMIT $3 OFFSET $4"
                ),
                // Lexemes as the index holds them (lower-cased, see `lexemes`), quoted
                // for the tsquery input: no text parser runs on either side.
                words
                    .iter()
                    .map(|w| {
                        let w = fold(w);
                        format!("'{w}'{}", if is_prefix(&w) { ":*" } else { "" })
                    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexemes_are_lower_cased_words_with_their_positions() {
        assert_eq!(
            lexemes("The quick, QUICK fox!"),
            "'fox':4 'quick':2,3 'the':1"
        );
        assert_eq!(
            lexemes("Grüße aus ÉCOLE-42"),
            "'42':4 'aus':2 'grüße':1 'école':3"
        );
        assert_eq!(lexemes(" ... "), "");
        assert_eq!(lexemes("İSTANBUL ΟΔΥΣ"), "'istanbul':1 'οδυσ':2");
        assert_eq!(
            fold("ΟΔΥΣ"),
            "οδυσ",
            "a prefix folds like the word it begins"
        );
    }

    #[test]
    fn lexemes_stay_within_what_postgresql_accepts() {
        let long = "a".repeat(2047);
        assert_eq!(lexemes(&format!("{long} ok")), "'ok':2");
        let longest = "a".repeat(2046);
        assert_eq!(lexemes(&longest), format!("'{longest}':1"));
        let many = lexemes(&"x ".repeat(20_000));
        assert_eq!(many.matches(',').count(), MAX_POSITIONS - 1);
        let far = lexemes(&format!("{}y", "x ".repeat(20_000)));
        assert!(far.ends_with("'y':16383"), "{far}");
    }
}
