//! Attachments: upload to a chat (multipart/form-data, field `file`) and download
//! (members only, checked on every request).

use actix_multipart::Multipart;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use bytes::{Bytes, BytesMut};
use chat_domain::{ChatId, FieldErrors};
use chat_services::AppContext;
use chat_services::attachments::{self, AttachmentView};
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::Duration;

use crate::{ApiError, AuthUser, Problem};

/// Mounts `GET /attachments/{id}` (the upload is under `/chats`).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/attachments/{attachment_id}").route(web::get().to(download)));
}

fn malformed(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_multipart",
        format!("not a multipart/form-data body: {err}"),
    )
}

/// Upload a file to a chat (members who may post there), as `multipart/form-data`
/// with the file in field `file`. Its type is read from its bytes; images get their
/// width and height. Send it with a message (`attachments: [id]`) — until then only you
/// can download it, and after a day unsent it is removed.
#[utoipa::path(post, path = "/api/v1/chats/{chat_id}/attachments", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    request_body(content_type = "multipart/form-data", description = "Field `file`: the file (at most `CHAT_MAX_UPLOAD_MB`, 10 MB by default)"),
    responses((status = 201, description = "Stored", body = AttachmentView),
        (status = 400, description = "Not a multipart body (`bad_multipart`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `CHAT_MAX_UPLOAD_MB` (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `file` field, or an empty file", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn upload(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    // Access first: nothing is read from a caller who may not upload here.
    let permit = attachments::authorize_upload(&ctx, &user.0, path.into_inner()).await?;
    let limit = permit.max_bytes;
    let (filename, bytes) = tokio::time::timeout(UPLOAD_DEADLINE, read_file(&mut form, limit))
        .await
        .map_err(|_| timed_out("an upload must arrive within", UPLOAD_DEADLINE))??;
    let stored = attachments::upload(&ctx, permit, &filename, bytes).await?;
    Ok(HttpResponse::Created().json(stored))
}

/// How long one upload's body may take to arrive.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(300);
/// How long an upload may send nothing: a client trickling bytes holds its slot no
/// longer than this past its last chunk.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);

fn timed_out(what: &str, limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "upload_timeout",
        format!("{what} {} s", limit.as_secs()),
    )
}

/// The next item of `stream`, unless it sends nothing for [`UPLOAD_IDLE`].
async fn next_or_idle<S: futures_util::Stream + Unpin>(
    stream: &mut S,
) -> Result<Option<S::Item>, ApiError> {
    tokio::time::timeout(UPLOAD_IDLE, stream.next())
        .await
        .map_err(|_| timed_out("an upload may pause for at most", UPLOAD_IDLE))
}
/// Bytes of the body besides the file (boundaries, part headers, other fields).
const FORM_OVERHEAD: usize = 64 * 1024;

/// The `file` field's name and bytes. The whole body counts: at most the file limit
/// plus [`FORM_OVERHEAD`], whatever fields it is spread over.
async fn read_file(form: &mut Multipart, limit: usize) -> Result<(String, Bytes), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a file may be at most {} MB", limit >> 20),
        )
    };
    let mut read = 0usize;
    while let Some(field) = next_or_idle(form).await? {
        let mut field = field.map_err(malformed)?;
        let is_file = field.name() == Some("file");
        let filename = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .unwrap_or("file")
            .to_owned();
        let mut bytes = BytesMut::new();
        while let Some(chunk) = next_or_idle(&mut field).await? {
            let chunk = chunk.map_err(malformed)?;
            read += chunk.len();
            if read > limit + FORM_OVERHEAD || (is_file && bytes.len() + chunk.len() > limit) {
                return Err(too_large());
            }
            // Other fields are read past, not kept.
            if is_file {
                bytes.extend_from_slice(&chunk);
            }
        }
        if is_file {
            return Ok((filename, bytes.freeze()));
        }
    }
    let mut errors = FieldErrors::new();
    errors.add(
        "file",
        "is required (a multipart/form-data field named `file`)",
    );
    Err(ApiError::validation(errors))
}

/// `/attachments/{attachment_id}`.
#[derive(Debug, Deserialize)]
pub struct AttachmentPath {
    /// The attachment.
    pub attachment_id: i64,
}

/// Download a file: members of its chat (site admins for groups); a file not sent yet,
/// only its uploader. Images (PNG, JPEG, GIF, WebP) are served inline, anything else as
/// `Content-Disposition: attachment`; never with a type that runs script (no
/// `nosniff`-defeating guesses, a `sandbox` content security policy).
#[utoipa::path(get, path = "/api/v1/attachments/{attachment_id}", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("attachment_id" = i64, Path, description = "Attachment id")),
    responses((status = 200, description = "The file's bytes, with its sniffed type", content_type = "application/octet-stream"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file, or not one you may see", body = Problem, content_type = "application/problem+json")))]
pub async fn download(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<AttachmentPath>,
) -> Result<HttpResponse, ApiError> {
    let file = attachments::download(&ctx, &user.0, path.into_inner().attachment_id).await?;
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if file.inline { "inline" } else { "attachment" },
        ascii_fallback(&file.attachment.filename),
        percent_encode(&file.attachment.filename),
    );
    let bytes = file.bytes.map(|chunk| {
        chunk.map_err(|err| actix_web::error::ErrorServiceUnavailable(err.to_string()))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, file.attachment.content_type.as_str()))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; sandbox",
        ))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .no_chunking(u64::try_from(file.attachment.size).unwrap_or_default())
        .streaming(bytes))
}

/// The name with anything but printable ASCII (and `"` and `\`) replaced, for clients
/// that ignore `filename*`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect()
}

/// RFC 5987 `attr-char`s kept, every other byte percent-encoded.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'!'
            | b'#'
            | b'$'
            | b'&'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_in_a_header() {
        assert_eq!(ascii_fallback("résumé \"final\".pdf"), "r_sum_ _final_.pdf");
        assert_eq!(percent_encode("é a.pdf"), "%C3%A9%20a.pdf");
    }
}
