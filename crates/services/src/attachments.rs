//! Attachments: a member uploads a file to a chat, a send attaches it to a message, and
//! members download it — access checked on every request. The bytes live in the file
//! store ([`chat_db::files::FileStore`]: a directory, or an S3-compatible bucket); their
//! type is sniffed from the bytes. Deleting the message or the chat removes the files;
//! an upload no message took is removed after a day.

use bytes::Bytes;
use chat_db::files::FileStream;
use chat_db::models::{AttachmentRow, NewAttachment};
use chat_domain::attachment::{FileName, MAX_ATTACHMENTS_PER_MESSAGE, sniff};
use chat_domain::permissions;
use chat_domain::{ChatId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::chats::{access, denied};
use crate::users::utc;
use crate::{AppContext, ServiceError, rate_limit};

/// How long an upload waits for a message to carry it before it is removed.
pub const UNSENT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// An uploaded file, as clients see it (on upload and on each message carrying it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    /// Id: pass it in a send's `attachments`.
    pub id: i64,
    /// The chat it belongs to.
    pub chat_id: i64,
    /// Its name as uploaded (without any path).
    pub filename: String,
    /// Its media type, read from its bytes (not from what the client said).
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Width in pixels (images).
    pub width: Option<i32>,
    /// Height in pixels (images).
    pub height: Option<i32>,
    /// Where members download it (with their bearer token).
    pub url: String,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

impl From<&AttachmentRow> for AttachmentView {
    fn from(row: &AttachmentRow) -> Self {
        AttachmentView {
            id: row.id,
            chat_id: row.chat_id,
            filename: row.filename.clone(),
            content_type: row.content_type.clone(),
            size: row.size,
            width: row.width,
            height: row.height,
            url: format!("/api/v1/attachments/{}", row.id),
            created_at: utc(row.created_at),
        }
    }
}

/// A file being downloaded.
pub struct Download {
    /// What it is.
    pub attachment: AttachmentView,
    /// Whether a browser may show it inline (a raster image); anything else is offered
    /// as a download.
    pub inline: bool,
    /// Its bytes.
    pub bytes: FileStream,
}

/// Leave to upload one file to a chat: only [`authorize_upload`] makes one, so a file is
/// never stored before its uploader's access was checked.
#[derive(Debug)]
pub struct UploadPermit {
    chat_id: ChatId,
    uploader: UserId,
    /// Largest file accepted (`CHAT_MAX_UPLOAD_MB`).
    pub max_bytes: usize,
}

/// Checks, before any byte is read, that the caller may upload to `chat_id`: a member
/// who may post there (in a direct chat under a block: 403 `user_unreachable`), within
/// the upload budget.
pub async fn authorize_upload(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<UploadPermit, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    if access.header.blocked {
        return Err(crate::users::unreachable());
    }
    ctx.limits
        .check(rate_limit::UPLOADS, &format!("user:{}", principal.user_id))?;
    Ok(UploadPermit {
        chat_id,
        uploader: principal.user_id,
        max_bytes: ctx.chat.max_upload_bytes,
    })
}

/// Stores `bytes` as a file of the permit's chat. It waits for a send to carry it
/// (`attachments: [id]`); until then only the uploader sees it.
pub async fn upload(
    ctx: &AppContext,
    permit: UploadPermit,
    filename: &str,
    bytes: Bytes,
) -> Result<AttachmentView, ServiceError> {
    let UploadPermit {
        chat_id,
        uploader,
        max_bytes,
    } = permit;
    if bytes.is_empty() {
        return Err(ServiceError::invalid("file", "is empty"));
    }
    if bytes.len() > max_bytes {
        return Err(ServiceError::invalid(
            "file",
            format!("is larger than {} MB", max_bytes >> 20),
        ));
    }
    let name = FileName::clean(filename);
    let sniffed = sniff(&bytes);
    let (width, height) = if sniffed.image {
        match imagesize::blob_size(&bytes) {
            Ok(size) => (
                i32::try_from(size.width).ok(),
                i32::try_from(size.height).ok(),
            ),
            Err(_) => (None, None),
        }
    } else {
        (None, None)
    };
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    // Unguessable, and never derived from the client's name.
    let key = format!("chats/{}/{:032x}", chat_id.0, rand::random::<u128>());
    ctx.files.put(&key, bytes).await?;
    let new = NewAttachment {
        chat_id: chat_id.0,
        uploader_id: Some(uploader.0),
        storage_key: &key,
        filename: name.as_str(),
        content_type: sniffed.content_type,
        size,
        width,
        height,
        created_at: chat_db::now(),
    };
    match AttachmentRow::insert(&ctx.store.db, &new).await {
        Ok(row) => Ok(AttachmentView::from(&row)),
        Err(err) => {
            remove_files(ctx, &[key]).await;
            Err(err.into())
        }
    }
}

/// A file for the caller: a member of its chat (a moderating site admin, for groups),
/// and for a file no message carries yet, only its uploader. Anyone else: 404, as if it
/// did not exist.
pub async fn download(
    ctx: &AppContext,
    principal: &Principal,
    id: i64,
) -> Result<Download, ServiceError> {
    let missing = || ServiceError::NotFound(format!("attachment {id} not found"));
    let row = AttachmentRow::find(&ctx.store.db, id)
        .await?
        .ok_or_else(missing)?;
    if row.message_id.is_none() && row.uploader_id != Some(principal.user_id.0) {
        return Err(missing());
    }
    let access = match access(ctx, principal, ChatId(row.chat_id)).await {
        Ok(access) => access,
        Err(ServiceError::NotFound(_)) => return Err(missing()),
        Err(other) => return Err(other),
    };
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    let bytes = ctx.files.get(&row.storage_key).await?.ok_or_else(missing)?;
    Ok(Download {
        inline: sniff_is_image(&row.content_type),
        attachment: AttachmentView::from(&row),
        bytes,
    })
}

fn sniff_is_image(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// What a send attaches: `ids` must be the sender's own uploads to `chat_id` that no
/// message carries yet (at most 10, each once). Returns them in the order given.
pub(crate) async fn for_send(
    ctx: &AppContext,
    sender: UserId,
    chat_id: ChatId,
    ids: &[i64],
) -> Result<Vec<AttachmentView>, ServiceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != ids.len() || ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(ServiceError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS_PER_MESSAGE} different attachments"),
        ));
    }
    let rows = AttachmentRow::unsent(&ctx.store.db, chat_id.0, sender.0, ids).await?;
    ids.iter()
        .map(|id| {
            rows.iter()
                .find(|row| row.id == *id)
                .map(AttachmentView::from)
                .ok_or_else(|| {
                    ServiceError::invalid(
                        "attachments",
                        format!("{id} is not a file you uploaded to this chat and have not sent"),
                    )
                })
        })
        .collect()
}

/// Removes the files of a deleted message.
pub(crate) async fn purge_message(ctx: &AppContext, message_id: i64) -> Result<(), ServiceError> {
    let rows = AttachmentRow::of_message(&ctx.store.db, message_id).await?;
    purge(ctx, rows).await
}

/// The files of a chat about to be deleted (their rows go with it): remove them with
/// [`remove_files`] once it is.
pub(crate) async fn keys_of_chat(
    ctx: &AppContext,
    chat_id: ChatId,
) -> Result<Vec<String>, ServiceError> {
    Ok(AttachmentRow::of_chat(&ctx.store.db, chat_id.0)
        .await?
        .into_iter()
        .map(|row| row.storage_key)
        .collect())
}

/// Removes uploads no message took within [`UNSENT_LIFETIME`] (at most `limit` per
/// call); returns how many.
pub async fn remove_abandoned(ctx: &AppContext, limit: i64) -> Result<usize, ServiceError> {
    let age = chrono::Duration::from_std(UNSENT_LIFETIME).unwrap_or_default();
    let before = chat_db::now() - age;
    let rows = AttachmentRow::abandoned(&ctx.store.db, before, limit).await?;
    let count = rows.len();
    purge(ctx, rows).await?;
    Ok(count)
}

async fn purge(ctx: &AppContext, rows: Vec<AttachmentRow>) -> Result<(), ServiceError> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = rows.iter().map(|r| r.storage_key.clone()).collect();
    // Rows first: a file whose row is gone is never served, whatever happens next.
    AttachmentRow::delete_many(&ctx.store.db, rows.iter().map(|r| r.id).collect()).await?;
    remove_files(ctx, &keys).await;
    Ok(())
}

/// Removes stored files; one that cannot be removed now is logged (its row is already
/// gone, so it is never served).
pub(crate) async fn remove_files(ctx: &AppContext, keys: &[String]) {
    for key in keys {
        if let Err(err) = ctx.files.delete(key).await {
            tracing::warn!(error = %err, key, "cannot remove an attachment's file");
        }
    }
}

/// Removes abandoned uploads every hour, until the process stops.
pub fn spawn_janitor(ctx: AppContext) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match remove_abandoned(&ctx, 1000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "abandoned uploads removed"),
                Err(err) => tracing::warn!(error = %err, "cannot remove abandoned uploads"),
            }
        }
    });
}
