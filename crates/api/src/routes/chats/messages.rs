//! Message handlers.

use actix_web::{HttpResponse, web};
use chat_domain::{ChatId, MessageId, Seq};
use chat_services::AppContext;
use chat_services::chats::MessageView;
use chat_services::messages::{self, HistoryQuery, ReadMarker, SendMessageInput};
use chat_services::pagination::Page;
use chat_services::reactions::{self, MessageReactions};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, ApiJson, AuthUser, Problem, VerifiedToken};

/// Which history to read.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListMessages {
    /// Newest first, below this seq.
    pub before_seq: Option<i64>,
    /// Oldest first, above this seq — what a reconnecting client missed.
    pub after_seq: Option<i64>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// Newest first, skipping this many (seed 003 compatibility).
    pub offset: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A chat's history (members; site admins for groups).
#[utoipa::path(get, path = "/api/v1/chats/{chat_id}/messages", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ListMessages),
    responses((status = 200, body = Page<MessageView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_messages(
    ctx: web::Data<AppContext>,
    token: VerifiedToken,
    path: web::Path<ChatId>,
    query: web::Query<ListMessages>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let history = HistoryQuery {
        before_seq: query.before_seq,
        after_seq: query.after_seq,
        limit: query.limit,
        offset: query.offset,
        cursor: query.cursor,
    };
    let body = messages::history_json_for_token(&ctx, token.0, path.into_inner(), history).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// 1–4000 characters after trimming (may be empty or absent with `attachments`).
    #[schema(example = "hello")]
    #[serde(default)]
    pub content: String,
    /// Idempotency key (1–64 printable ASCII): resending it returns the original.
    pub client_id: Option<String>,
    /// A message of this chat being answered.
    pub reply_to: Option<i64>,
    /// Files you uploaded to this chat (`POST /chats/{id}/attachments`) and have not sent
    /// yet: at most 10.
    #[serde(default)]
    pub attachments: Vec<i64>,
}

/// Send a message; it is broadcast live like a WebSocket send.
#[utoipa::path(post, path = "/api/v1/chats/{chat_id}/messages", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")), request_body = SendMessage,
    responses((status = 201, description = "Stored", body = MessageView), (status = 200, description = "Duplicate client_id: the original", body = MessageView),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn send_message(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
    body: ApiJson<SendMessage>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let input = SendMessageInput {
        content: body.content,
        client_id: body.client_id,
        reply_to: body.reply_to,
        attachments: body.attachments,
    };
    let (message, created) =
        messages::send_message(&ctx, &user.0, path.into_inner(), input).await?;
    Ok(if created {
        HttpResponse::Created().json(message)
    } else {
        HttpResponse::Ok().json(message)
    })
}

/// New text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// 1–4000 characters after trimming.
    pub content: String,
}

/// `/chats/{chat_id}/messages/{message_id}`.
#[derive(Debug, Deserialize)]
pub struct MessagePath {
    /// The chat.
    pub chat_id: ChatId,
    /// The message.
    pub message_id: MessageId,
}

/// Edit your message.
#[utoipa::path(patch, path = "/api/v1/chats/{chat_id}/messages/{message_id}", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("message_id" = i64, Path, description = "Message id")), request_body = EditMessage,
    responses((status = 200, body = MessageView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the author", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Deleted (`message_deleted`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many edits", body = Problem, content_type = "application/problem+json")))]
pub async fn edit_message(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<MessagePath>,
    body: ApiJson<EditMessage>,
) -> Result<web::Json<MessageView>, ApiError> {
    let MessagePath {
        chat_id,
        message_id,
    } = path.into_inner();
    Ok(web::Json(
        messages::edit_message(&ctx, &user.0, chat_id, message_id, &body.0.content).await?,
    ))
}

/// Delete a message (author, chat owner/admins, site admins): its text is blanked.
#[utoipa::path(delete, path = "/api/v1/chats/{chat_id}/messages/{message_id}", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("message_id" = i64, Path, description = "Message id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_message(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<MessagePath>,
) -> Result<HttpResponse, ApiError> {
    let MessagePath {
        chat_id,
        message_id,
    } = path.into_inner();
    messages::delete_message(&ctx, &user.0, chat_id, message_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `/chats/{chat_id}/messages/{message_id}/reactions/{emoji}`.
#[derive(Debug, Deserialize)]
pub struct ReactionPath {
    /// The chat.
    pub chat_id: ChatId,
    /// The message.
    pub message_id: MessageId,
    /// The emoji, percent-encoded in the path.
    pub emoji: String,
}

/// React to a message with an emoji (members only). Idempotent: reacting again with the
/// same emoji changes nothing. A message carries at most 20 different emoji.
#[utoipa::path(put, path = "/api/v1/chats/{chat_id}/messages/{message_id}/reactions/{emoji}", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("message_id" = i64, Path, description = "Message id"),
        ("emoji" = String, Path, description = "One emoji sequence, percent-encoded (`%F0%9F%91%8D` for 👍)")),
    responses((status = 200, description = "The message's reactions now", body = MessageReactions),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member (`not_a_member`), or a direct chat under a block (`user_unreachable`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The message is deleted (`message_deleted`) or already carries 20 different emoji (`too_many_reactions`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an emoji", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn add_reaction(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ReactionPath>,
) -> Result<web::Json<MessageReactions>, ApiError> {
    set_reaction(&ctx, &user, path.into_inner(), true).await
}

/// Take back your reaction. Idempotent.
#[utoipa::path(delete, path = "/api/v1/chats/{chat_id}/messages/{message_id}/reactions/{emoji}", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("message_id" = i64, Path, description = "Message id"),
        ("emoji" = String, Path, description = "One emoji sequence, percent-encoded")),
    responses((status = 200, description = "The message's reactions now", body = MessageReactions),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an emoji", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_reaction(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ReactionPath>,
) -> Result<web::Json<MessageReactions>, ApiError> {
    set_reaction(&ctx, &user, path.into_inner(), false).await
}

/// Both reaction routes: the service call with the path's parts.
async fn set_reaction(
    ctx: &AppContext,
    user: &AuthUser,
    path: ReactionPath,
    add: bool,
) -> Result<web::Json<MessageReactions>, ApiError> {
    let ids = (path.chat_id, path.message_id);
    let now = reactions::set_reaction(ctx, &user.0, ids, &path.emoji, add).await?;
    Ok(web::Json(now))
}

/// A read position.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MarkRead {
    /// Highest seq read; the marker only moves forward.
    #[schema(value_type = i64)]
    pub seq: Seq,
}

/// Move your read marker forward.
#[utoipa::path(post, path = "/api/v1/chats/{chat_id}/read", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")), request_body = MarkRead,
    responses((status = 200, body = ReadMarker), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn mark_read(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
    body: ApiJson<MarkRead>,
) -> Result<web::Json<ReadMarker>, ApiError> {
    Ok(web::Json(
        messages::mark_read(&ctx, &user.0, path.into_inner(), body.0.seq).await?,
    ))
}
