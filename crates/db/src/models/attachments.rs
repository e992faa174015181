//! The `attachments` table: files uploaded to chats (their bytes are in the file store,
//! [`crate::files::FileStore`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::attachments;
use crate::{DbError, DbPool, with_conn};

/// An uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = attachments)]
pub struct AttachmentRow {
    /// Primary key.
    pub id: i64,
    /// The chat it was uploaded to.
    pub chat_id: i64,
    /// Who uploaded it.
    pub uploader_id: Option<i64>,
    /// The message carrying it, once sent.
    pub message_id: Option<i64>,
    /// Taken by a send on its way to the writer.
    pub claimed: bool,
    /// Where its bytes are in the file store.
    pub storage_key: String,
    /// Its name, cleaned.
    pub filename: String,
    /// Its media type, sniffed from its bytes.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Image width in pixels.
    pub width: Option<i32>,
    /// Image height in pixels.
    pub height: Option<i32>,
    /// Upload time.
    #[diesel(deserialize_as = crate::StoredTime)]
    pub created_at: NaiveDateTime,
}

/// A file to record (its bytes already stored).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = attachments)]
pub struct NewAttachment<'a> {
    /// The chat.
    pub chat_id: i64,
    /// The uploader.
    pub uploader_id: Option<i64>,
    /// Where its bytes are.
    pub storage_key: &'a str,
    /// Its name.
    pub filename: &'a str,
    /// Its media type.
    pub content_type: &'a str,
    /// Bytes.
    pub size: i64,
    /// Image width.
    pub width: Option<i32>,
    /// Image height.
    pub height: Option<i32>,
    /// Upload time.
    pub created_at: NaiveDateTime,
}

impl AttachmentRow {
    /// Records an uploaded file.
    pub async fn insert(pool: &DbPool, new: &NewAttachment<'_>) -> Result<Self, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::insert_into(attachments::table)
                .values(new)
                .returning(AttachmentRow::as_returning())
                .get_result(conn)
                .await?)
        })
    }

    /// One file, by id.
    pub async fn find(pool: &DbPool, id: i64) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(attachments::table
                .find(id)
                .select(AttachmentRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Takes for one send those of `ids` that `uploader` uploaded to `chat_id` after
    /// `since`, that no message carries and no other send has taken: one statement, so
    /// two sends racing for a file cannot both get it. Returns what was taken.
    pub async fn claim(
        pool: &DbPool,
        chat_id: i64,
        uploader: i64,
        ids: &[i64],
        since: NaiveDateTime,
    ) -> Result<Vec<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(
                attachments::table
                    .filter(attachments::id.eq_any(ids))
                    .filter(attachments::chat_id.eq(chat_id))
                    .filter(attachments::uploader_id.eq(uploader))
                    .filter(attachments::message_id.is_null())
                    .filter(attachments::claimed.eq(false))
                    .filter(attachments::created_at.gt(since)),
            )
            .set(attachments::claimed.eq(true))
            .returning(AttachmentRow::as_returning())
            .get_results(conn)
            .await?)
        })
    }

    /// Gives back files a send took but did not store.
    pub async fn release(pool: &DbPool, ids: &[i64]) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        with_conn!(pool, conn => {
            diesel::update(
                attachments::table
                    .filter(attachments::id.eq_any(ids))
                    .filter(attachments::message_id.is_null()),
            )
            .set(attachments::claimed.eq(false))
            .execute(conn)
            .await?;
            Ok(())
        })
    }

    /// How many files `uploader` has uploaded that no message carries yet.
    pub async fn unsent_count(pool: &DbPool, uploader: i64) -> Result<i64, DbError> {
        with_conn!(pool, conn => {
            Ok(attachments::table
                .filter(attachments::uploader_id.eq(uploader))
                .filter(attachments::message_id.is_null())
                .count()
                .get_result(conn)
                .await?)
        })
    }

    /// Forgets files no message took, uploaded before `before` (at most `limit`), and
    /// returns where their bytes are. A file a send links meanwhile is kept: the
    /// deletion itself checks it is still unsent.
    pub async fn delete_abandoned(
        pool: &DbPool,
        before: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        with_conn!(pool, conn => {
            let ids: Vec<i64> = attachments::table
                .filter(attachments::message_id.is_null())
                .filter(attachments::created_at.lt(before))
                .order(attachments::id)
                .limit(limit)
                .select(attachments::id)
                .load(conn)
                .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            Ok(diesel::delete(
                attachments::table
                    .filter(attachments::id.eq_any(ids))
                    .filter(attachments::message_id.is_null()),
            )
            .returning(attachments::storage_key)
            .get_results(conn)
            .await?)
        })
    }
}
