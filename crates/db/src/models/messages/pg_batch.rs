//! The batch statement on PostgreSQL: one round trip for the whole batch.

use super::*;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};

/// The seq bump of every chat in the batch and the insert of its messages, as **one**
/// statement: one round trip (no `BEGIN`/`COMMIT`; a single statement is atomic) and
/// one text whatever the batch size, so PostgreSQL parses and plans it once per
/// connection (diesel caches it by type). diesel's multi-row `INSERT` and
/// `sql_query` are never cached: their text varies or is opaque to the cache.
///
/// Chat rows are locked in id order (concurrent batches from other instances cannot
/// deadlock); messages are numbered in input order per chat from the bumped
/// `last_seq`; a chat that is gone has no row to bump, so its messages are not
/// inserted. Returns the stored rows.
///
/// `LINKS`: whether the statement also links attachments and writes mention rows. A
/// batch without either (most are) runs the statement without those two
/// data-modifying parts: PostgreSQL opens no `attachments` or `message_mentions`
/// relation and index for it, a fixed cost of every execution. Two types, so diesel
/// keeps each text prepared under its own key.
pub(super) struct StoreBatch<'a, const LINKS: bool> {
    pub(super) bump_ids: Vec<i64>,
    pub(super) bump_counts: Vec<i64>,
    pub(super) bump_times: Vec<NaiveDateTime>,
    pub(super) chat_ids: Vec<i64>,
    pub(super) sender_ids: Vec<i64>,
    pub(super) contents: Vec<&'a str>,
    pub(super) client_ids: Vec<Option<&'a str>>,
    pub(super) reply_tos: Vec<Option<i64>>,
    pub(super) created: Vec<NaiveDateTime>,
    pub(super) mentions: Vec<Option<&'a str>>,
    pub(super) attachments: Vec<Option<&'a str>>,
    /// Each message's search entry, a `tsvector` literal ([`super::search::lexemes`]).
    pub(super) words: Vec<String>,
}

impl<const LINKS: bool> QueryId for StoreBatch<'_, LINKS> {
    type QueryId = StoreBatch<'static, LINKS>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const LINKS: bool> Query for StoreBatch<'_, LINKS> {
    type SqlType = (
        BigInt,
        BigInt,
        Nullable<BigInt>,
        BigInt,
        Text,
        Nullable<Text>,
        Nullable<BigInt>,
        Timestamp,
        Nullable<Timestamp>,
        Nullable<Timestamp>,
        Nullable<Text>,
        Nullable<Text>,
    );
}

impl<const LINKS: bool> QueryFragment<Pg> for StoreBatch<'_, LINKS> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH bump AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.bump_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.bump_counts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.bump_times)?;
        out.push_sql(
            ") AS b(id, n, at)), \
             locked AS (SELECT id FROM chats WHERE id IN (SELECT id FROM bump) \
               ORDER BY id FOR UPDATE), \
             bumped AS (UPDATE chats SET last_seq = chats.last_seq + bump.n, \
               last_activity_at = bump.at FROM bump \
               WHERE chats.id = bump.id AND chats.id IN (SELECT id FROM locked) \
               RETURNING chats.id, chats.last_seq, bump.n), \
             input AS (SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.chat_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.sender_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.contents)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.reply_tos)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.created)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.mentions)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.attachments)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.words)?;
        out.push_sql(
            ") WITH ORDINALITY AS i(chat_id, sender_id, content, client_id, reply_to, \
               created_at, mentions, attachments, words, ord)), \
             stored AS (INSERT INTO messages (chat_id, sender_id, seq, content, client_id, \
               reply_to, created_at, mentions, attachments, search) \
             SELECT i.chat_id, i.sender_id, \
               b.last_seq - b.n + row_number() OVER (PARTITION BY i.chat_id ORDER BY i.ord), \
               i.content, i.client_id, i.reply_to, i.created_at, i.mentions, i.attachments, \
               i.words::tsvector \
             FROM input i JOIN bumped b ON b.id = i.chat_id \
             RETURNING id, chat_id, sender_id, seq, content, client_id, reply_to, \
               created_at, edited_at, deleted_at, mentions, attachments)",
        );
        if LINKS {
            // Attachments are linked and mentions' rows written by more data-modifying
            // CTEs of the same statement: no extra round trip.
            out.push_sql(
                ", linked AS (UPDATE attachments a SET message_id = s.id FROM stored s \
               CROSS JOIN LATERAL json_array_elements(s.attachments::json) AS e(v) \
               WHERE s.attachments IS NOT NULL AND a.id = (e.v->>'id')::bigint \
               AND a.message_id IS NULL), \
             mentioned AS (INSERT INTO message_mentions (user_id, chat_id, seq, message_id) \
               SELECT u.id::bigint, s.chat_id, s.seq, s.id FROM stored s \
               CROSS JOIN LATERAL unnest(string_to_array(s.mentions, ',')) AS u(id) \
               WHERE s.mentions IS NOT NULL)",
            );
        }
        out.push_sql(
            " SELECT id, chat_id, sender_id, seq, content, client_id, reply_to, \
               created_at, edited_at, deleted_at, mentions, attachments FROM stored",
        );
        Ok(())
    }
}

/// Runs the batch statement for `accepted` (the plan's bumps must count exactly those):
/// the variant that links attachments and writes mention rows only when one of them
/// carries either. Returns the stored rows.
pub(super) async fn store<'a, 'b>(
    conn: &mut crate::PgConn,
    bumps: &[(i64, i64, NaiveDateTime)],
    accepted: impl Iterator<Item = &'b NewMessage<'a>> + Clone,
) -> QueryResult<Vec<MessageRow>>
where
    'a: 'b,
{
    let links = accepted
        .clone()
        .any(|m| m.mentions.is_some() || m.attachments.is_some());
    if links {
        StoreBatch::<true>::new(bumps, accepted).load(conn).await
    } else {
        StoreBatch::<false>::new(bumps, accepted).load(conn).await
    }
}

/// The batch statement's SQL text (`links`: the variant that also links attachments and
/// writes mention rows) and its parameters' types, as `PREPARE` takes them: for looking
/// at its plan with `EXPLAIN EXECUTE` (an operator, and the test that its plan reads
/// `chats` by key).
pub fn store_batch_statement(links: bool) -> (String, &'static str) {
    let text = if links {
        let empty = StoreBatch::<true>::new(&[], std::iter::empty());
        diesel::debug_query::<Pg, _>(&empty).to_string()
    } else {
        let empty = StoreBatch::<false>::new(&[], std::iter::empty());
        diesel::debug_query::<Pg, _>(&empty).to_string()
    };
    let sql = text
        .split("-- binds")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let types = "bigint[], bigint[], timestamp[], bigint[], bigint[], text[], text[], \
                 bigint[], timestamp[], text[], text[], text[]";
    (sql, types)
}

impl<'a, const LINKS: bool> StoreBatch<'a, LINKS> {
    /// The statement for the accepted messages of `batch` (the plan's bumps must
    /// count exactly those).
    pub(super) fn new<'b>(
        bumps: &[(i64, i64, NaiveDateTime)],
        accepted: impl Iterator<Item = &'b NewMessage<'a>>,
    ) -> Self
    where
        'a: 'b,
    {
        let mut statement = StoreBatch {
            bump_ids: bumps.iter().map(|b| b.0).collect(),
            bump_counts: bumps.iter().map(|b| b.1).collect(),
            bump_times: bumps.iter().map(|b| b.2).collect(),
            chat_ids: Vec::new(),
            sender_ids: Vec::new(),
            contents: Vec::new(),
            client_ids: Vec::new(),
            reply_tos: Vec::new(),
            created: Vec::new(),
            mentions: Vec::new(),
            attachments: Vec::new(),
            words: Vec::new(),
        };
        for m in accepted {
            statement.chat_ids.push(m.chat_id);
            statement.sender_ids.push(m.sender_id);
            statement.contents.push(m.content);
            statement.client_ids.push(m.client_id);
            statement.reply_tos.push(m.reply_to);
            statement.created.push(m.created_at);
            statement.mentions.push(m.mentions);
            statement.attachments.push(m.attachments.map(|a| a.1));
            statement.words.push(super::search::lexemes(m.content));
        }
        statement
    }
}

/// The batch's `(chat, sender, client_id)` keys that are already stored, in one
/// statement: each key is one probe of the unique index (`unnest` joined to
/// `messages`), so the look-up costs the keys, not the chats' history. One text for
/// every batch, cached prepared like [`StoreBatch`].
pub(super) struct ExistingKeys<'a> {
    chat_ids: Vec<i64>,
    sender_ids: Vec<i64>,
    client_ids: Vec<&'a str>,
}

impl<'a> ExistingKeys<'a> {
    /// The statement for these keys.
    pub(super) fn new(keys: &[(i64, i64, &'a str)]) -> Self {
        ExistingKeys {
            chat_ids: keys.iter().map(|k| k.0).collect(),
            sender_ids: keys.iter().map(|k| k.1).collect(),
            client_ids: keys.iter().map(|k| k.2).collect(),
        }
    }
}

impl QueryId for ExistingKeys<'_> {
    type QueryId = ExistingKeys<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for ExistingKeys<'_> {
    type SqlType = (BigInt, Nullable<BigInt>, Nullable<Text>);
}

impl QueryFragment<Pg> for ExistingKeys<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT m.chat_id, m.sender_id, m.client_id FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.chat_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.sender_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.client_ids)?;
        // `IS NOT NULL` spelled out: the unique index is partial on it.
        out.push_sql(
            ") AS k(chat_id, sender_id, client_id) JOIN messages m \
             ON m.chat_id = k.chat_id AND m.sender_id = k.sender_id \
             AND m.client_id = k.client_id AND m.client_id IS NOT NULL",
        );
        Ok(())
    }
}

#[cfg(test)]
mod pg_batch_tests {
    use super::*;
    use diesel::pg::Pg;
    use diesel::query_builder::{QueryFragment, QueryId};

    fn message(chat_id: i64, content: &str) -> NewMessage<'_> {
        NewMessage {
            chat_id,
            sender_id: 7,
            content,
            client_id: None,
            reply_to: None,
            created_at: NaiveDateTime::default(),
            mentions: None,
            attachments: None,
        }
    }

    fn sql<const LINKS: bool>(statement: &pg_batch::StoreBatch<'_, LINKS>) -> String {
        let text = diesel::debug_query::<Pg, _>(statement).to_string();
        text.split("-- binds").next().unwrap_or_default().to_owned()
    }

    /// What makes the batch statement cheap: PostgreSQL sees one text whatever the batch
    /// holds, and diesel is allowed to keep it prepared.
    #[test]
    fn the_batch_statement_is_one_cacheable_text_for_every_batch() -> QueryResult<()> {
        let one = [message(1, "a")];
        let many = [message(1, "a"), message(2, "b"), message(1, "c")];
        let at = NaiveDateTime::default();
        let small = pg_batch::StoreBatch::<false>::new(&[(1, 1, at)], one.iter());
        let large = pg_batch::StoreBatch::<false>::new(&[(1, 2, at), (2, 1, at)], many.iter());
        assert_eq!(sql(&small), sql(&large));
        assert!(sql(&small).contains("FOR UPDATE"));
        const { assert!(<pg_batch::StoreBatch<'_, false> as QueryId>::HAS_STATIC_QUERY_ID) };
        assert!(large.is_safe_to_cache_prepared(&Pg)?);
        assert_eq!(large.contents, ["a", "b", "c"], "input order kept");
        assert_eq!(large.bump_counts, [2, 1]);
        Ok(())
    }

    /// A batch without attachments or mentions runs a statement that touches neither
    /// table; the full one is another type, so diesel caches the two apart.
    #[test]
    fn the_statement_without_links_leaves_their_tables_alone() -> QueryResult<()> {
        let one = [message(1, "a")];
        let at = NaiveDateTime::default();
        let plain = pg_batch::StoreBatch::<false>::new(&[(1, 1, at)], one.iter());
        let full = pg_batch::StoreBatch::<true>::new(&[(1, 1, at)], one.iter());
        for table in ["UPDATE attachments", "INSERT INTO message_mentions"] {
            assert!(
                !sql(&plain).contains(table),
                "{table} in the plain statement"
            );
            assert!(
                sql(&full).contains(table),
                "{table} missing from the full one"
            );
        }
        assert!(sql(&plain).trim_end().ends_with("FROM stored"));
        assert!(sql(&full).trim_end().ends_with("FROM stored"));
        assert!(plain.is_safe_to_cache_prepared(&Pg)? && full.is_safe_to_cache_prepared(&Pg)?);
        assert_ne!(
            std::any::TypeId::of::<<pg_batch::StoreBatch<'_, false> as QueryId>::QueryId>(),
            std::any::TypeId::of::<<pg_batch::StoreBatch<'_, true> as QueryId>::QueryId>(),
        );
        Ok(())
    }

    /// The duplicate look-up is one cached text too, and probes exactly the keys given.
    #[test]
    fn the_duplicate_look_up_is_one_cacheable_text_of_exact_keys() -> QueryResult<()> {
        let one = pg_batch::ExistingKeys::new(&[(1, 7, "a")]);
        let two = pg_batch::ExistingKeys::new(&[(1, 7, "a"), (2, 8, "b")]);
        let text = |q: &pg_batch::ExistingKeys<'_>| {
            let text = diesel::debug_query::<Pg, _>(q).to_string();
            text.split("-- binds").next().unwrap_or_default().to_owned()
        };
        assert_eq!(text(&one), text(&two));
        assert!(text(&one).contains("m.sender_id = k.sender_id"));
        assert!(two.is_safe_to_cache_prepared(&Pg)?);
        assert_eq!(two.client_ids, ["a", "b"]);
        assert_eq!(two.sender_ids, [7, 8]);
        Ok(())
    }
}
