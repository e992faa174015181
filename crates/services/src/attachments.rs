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
/// How long after its upload a file may still be sent: an hour short of
/// [`UNSENT_LIFETIME`], so the hourly sweep never removes a file a send is taking.
pub const SENDABLE_FOR: Duration = Duration::from_secs(23 * 3600);
/// Most files a user may have uploaded and not sent yet.
pub const MAX_UNSENT: i64 = 50;
/// Memory all uploads being received at once may take in one process.
pub const UPLOAD_MEMORY: usize = 256 << 20;
/// Uploads one user may have in progress at once (in one process).
pub const UPLOADS_PER_USER: usize = 2;

/// How many uploads one process receives at once: as many as fit in [`UPLOAD_MEMORY`]
/// at twice the largest size (a growing buffer may hold up to twice what it received),
/// from 2 to 64. Past it an upload is answered 503 with `Retry-After`, before any byte is
/// read.
pub fn concurrent_uploads(max_upload_bytes: usize) -> usize {
    (UPLOAD_MEMORY / max_upload_bytes.max(1) / 2).clamp(2, 64)
}

/// The process's upload slots: [`concurrent_uploads`] in all, [`UPLOADS_PER_USER`] per
/// user, so no one user can hold them all.
pub struct UploadSlots {
    all: std::sync::Arc<tokio::sync::Semaphore>,
    per_user: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, usize>>>,
}

impl UploadSlots {
    /// Slots for uploads of at most `max_upload_bytes`.
    pub fn new(max_upload_bytes: usize) -> Self {
        UploadSlots {
            all: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent_uploads(
                max_upload_bytes,
            ))),
            per_user: Default::default(),
        }
    }

    /// Slots free now (tests).
    pub fn available(&self) -> usize {
        self.all.available_permits()
    }

    fn take(&self, user: UserId) -> Result<UploadSlot, ServiceError> {
        let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let mine = per_user.entry(user.0).or_default();
        if *mine >= UPLOADS_PER_USER {
            return Err(ServiceError::RateLimited {
                retry_after_secs: 1,
            });
        }
        let permit = self.all.clone().try_acquire_owned().map_err(|_| {
            ServiceError::Unavailable("every upload slot of this process is taken".to_owned())
        })?;
        *mine += 1;
        Ok(UploadSlot {
            _permit: permit,
            user: user.0,
            per_user: self.per_user.clone(),
        })
    }
}

/// One upload in progress; its slots free when it is dropped.
#[derive(Debug)]
struct UploadSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    user: i64,
    per_user: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, usize>>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mine) = per_user.get_mut(&self.user) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

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
    /// One of the process's upload slots, held until the file is stored.
    _slot: UploadSlot,
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
    if AttachmentRow::unsent_count(&ctx.store.db, principal.user_id.0).await? >= MAX_UNSENT {
        return Err(ServiceError::Conflict {
            code: "too_many_uploads",
            detail: format!(
                "at most {MAX_UNSENT} files may wait to be sent; send them or let them expire"
            ),
        });
    }
    let slot = ctx.uploads.take(principal.user_id)?;
    Ok(UploadPermit {
        chat_id,
        uploader: principal.user_id,
        max_bytes: ctx.chat.max_upload_bytes,
        _slot: slot,
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
        _slot,
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

/// Takes for one send the files it attaches: `ids` must be the sender's own uploads to
/// `chat_id` that no message carries and no other send has taken (at most 10, each
/// once), uploaded less than [`SENDABLE_FOR`] ago. All or nothing; returned in the
/// order given. The caller gives them back ([`release`]) if the send is not stored.
pub(crate) async fn claim(
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
    let since = chat_db::now() - chrono::Duration::from_std(SENDABLE_FOR).unwrap_or_default();
    let taken = AttachmentRow::claim(&ctx.store.db, chat_id.0, sender.0, ids, since).await?;
    let claimed: Result<Vec<AttachmentView>, i64> = ids
        .iter()
        .map(|id| {
            taken
                .iter()
                .find(|row| row.id == *id)
                .map(AttachmentView::from)
                .ok_or(*id)
        })
        .collect();
    match claimed {
        Ok(views) => Ok(views),
        Err(missing) => {
            release(ctx, &taken.iter().map(|row| row.id).collect::<Vec<_>>()).await;
            Err(ServiceError::invalid(
                "attachments",
                format!(
                    "{missing} is not a file you uploaded to this chat in the last 23 hours and have not sent"
                ),
            ))
        }
    }
}

/// Gives back files a send took but did not store (refused before the writer took it;
/// the writer gives back those of sends it did not store): they may be sent again.
pub(crate) async fn release(ctx: &AppContext, ids: &[i64]) {
    if let Err(err) = AttachmentRow::release(&ctx.store.db, ids).await {
        // Still unsent: the hourly sweep removes them after a day.
        tracing::warn!(error = %err, "cannot give back a send's attachments");
    }
}

/// Gives a send's files back when dropped armed: from the claim until the writer has the
/// send ([`ClaimGuard::disarm`]), so a send refused or abandoned on the way (its caller
/// gone mid-await) does not keep them.
pub(crate) struct ClaimGuard {
    ctx: Option<AppContext>,
    ids: Vec<i64>,
}

impl ClaimGuard {
    /// Guards `ids` (nothing to do when empty).
    pub(crate) fn new(ctx: &AppContext, ids: Vec<i64>) -> Self {
        ClaimGuard {
            ctx: (!ids.is_empty()).then(|| ctx.clone()),
            ids,
        }
    }

    /// The writer has the send: it gives the files back if it does not store it.
    pub(crate) fn disarm(mut self) {
        self.ctx = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            let ids = std::mem::take(&mut self.ids);
            tokio::spawn(async move { release(&ctx, &ids).await });
        }
    }
}

/// Removes, in the background, every file stored for a deleted chat (by its key prefix:
/// also one uploaded while the chat was being deleted, whose row went with it).
pub(crate) fn remove_chat_files(ctx: &AppContext, chat_id: ChatId) {
    let files = ctx.files.clone();
    tokio::spawn(async move {
        match files.delete_prefix(&format!("chats/{}", chat_id.0)).await {
            Ok(removed) => tracing::debug!(chat.id = chat_id.0, removed, "chat files removed"),
            Err(err) => {
                tracing::warn!(error = %err, chat.id = chat_id.0, "cannot remove a deleted chat's files")
            }
        }
    });
}

/// Removes uploads no message took, uploaded before `before` (at most `limit`); returns
/// how many.
pub async fn remove_abandoned(
    ctx: &AppContext,
    before: chrono::NaiveDateTime,
    limit: i64,
) -> Result<usize, ServiceError> {
    let keys = AttachmentRow::delete_abandoned(&ctx.store.db, before, limit).await?;
    remove_files(ctx, &keys).await;
    Ok(keys.len())
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

/// Removes abandoned uploads every hour (all of them, a thousand at a time), until the
/// process stops.
pub fn spawn_janitor(ctx: AppContext) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let age = chrono::Duration::from_std(UNSENT_LIFETIME).unwrap_or_default();
            let before = chat_db::now() - age;
            let mut total = 0;
            loop {
                match remove_abandoned(&ctx, before, 1000).await {
                    Ok(n) => {
                        total += n;
                        if n < 1000 {
                            break;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot remove abandoned uploads");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!(removed = total, "abandoned uploads removed");
            }
        }
    });
}
