//! Messages: send (idempotent by `client_id`), history, edit, soft delete, read markers.
//! The WebSocket layer calls these same functions.

use chat_db::DbError;
use chat_db::models::{ChatRow, HistoryRange, MembershipRow, MessageRow, mention_text};
use chat_domain::permissions;
use chat_domain::{ChatId, MessageId, Seq, UserId};
use chat_domain::{ClientId, FieldErrors, MessageBody, mentioned_names};
use chat_selectors::chats::Profile;
use chat_selectors::{ENTITY_TTL, keys};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::auth::tokens::AccessClaims;
use crate::chats::{ChatAccess, MessageView, access, access_with, authenticated_access, denied};
use crate::events::{ChatEvent, publish_chat};
use crate::history_cache::{Kept, Rendered, Span};
use crate::pagination::{self, Page};
use crate::rate_limit;
use crate::reactions::{self, Tally};
use crate::users::utc;
use crate::writer::{PendingMessage, Ticket};
use crate::{AppContext, ServiceError};

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct SendMessageInput {
    /// Text (1–4000 characters after trimming).
    pub content: String,
    /// Idempotency key: resending it returns the original message.
    pub client_id: Option<String>,
    /// A message of the same chat this one answers.
    pub reply_to: Option<i64>,
    /// Files uploaded to the chat by the sender and not sent yet (with them, the text
    /// may be empty).
    pub attachments: Vec<i64>,
}

/// Which history to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Newest first, below this seq.
    pub before_seq: Option<i64>,
    /// Oldest first, above this seq (catching up after a reconnect).
    pub after_seq: Option<i64>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Newest first, skipping this many (seed 003 compatibility).
    pub offset: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A member's read position after `mark_read`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReadMarker {
    /// Chat.
    #[schema(value_type = i64)]
    pub chat_id: ChatId,
    /// Highest seq read.
    pub last_read_seq: i64,
    /// Messages after it.
    pub unread_count: i64,
}

fn range_of(query: &HistoryQuery) -> Result<HistoryRange, ServiceError> {
    if let Some(cursor) = &query.cursor {
        let raw = pagination::decode_cursor(cursor)?;
        let bad = || ServiceError::invalid("cursor", "is not a cursor this server issued");
        let (kind, n) = raw.split_once(':').ok_or_else(bad)?;
        let n: i64 = n.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(bad)?;
        return match kind {
            "b" => Ok(HistoryRange::Before(Some(n))),
            "a" => Ok(HistoryRange::After(n)),
            "o" => Ok(HistoryRange::Offset(n)),
            _ => Err(bad()),
        };
    }
    let mut errors = FieldErrors::new();
    let given = [
        query.before_seq.is_some(),
        query.after_seq.is_some(),
        query.offset.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        errors.add(
            "before_seq",
            "use only one of before_seq, after_seq and offset",
        );
    }
    for (field, value) in [
        ("before_seq", query.before_seq),
        ("after_seq", query.after_seq),
        ("offset", query.offset),
    ] {
        if value.is_some_and(|v| v < 0) {
            errors.add(field, "must not be negative");
        }
    }
    errors
        .finish(|| match (query.after_seq, query.offset) {
            (Some(after), _) => HistoryRange::After(after),
            (_, Some(offset)) => HistoryRange::Offset(offset),
            _ => HistoryRange::Before(query.before_seq),
        })
        .map_err(Into::into)
}

/// A page of a chat's history: newest first (`before_seq`, `offset`, or nothing), or
/// oldest first after `after_seq` — what a reconnecting client asks to get exactly what
/// it missed.
pub async fn history(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    query: HistoryQuery,
) -> Result<Page<MessageView>, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    history_page(ctx, principal.user_id, &access, chat_id, query).await
}

/// [`history`] for a request that carries a verified access token, rendered as the
/// JSON of a `Page<MessageView>`: its session, the caller's access to the chat and the
/// chat's history tokens are read in one cache round trip, and the page is served from
/// the process's [`crate::history_cache::HistoryCache`] when that holds all of it (the
/// HTTP history route, the busiest read).
pub async fn history_json_for_token(
    ctx: &AppContext,
    claims: AccessClaims,
    chat_id: ChatId,
    query: HistoryQuery,
) -> Result<String, ServiceError> {
    let epoch_key = keys::history_epoch(chat_id.0);
    let last_key = keys::history_last(chat_id.0);
    // Checked by the access read below (a token whose subject is not an id is refused).
    let reader = UserId(claims.sub.parse().unwrap_or_default());
    let (access, tokens) =
        authenticated_access(ctx, claims, chat_id, &[&epoch_key, &last_key]).await?;
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    let limit = pagination::limit(query.limit)?;
    let range = range_of(&query)?;
    let token = |i: usize| tokens.get(i).and_then(|raw| raw.as_deref());
    let epoch = token(0).and_then(|raw| raw.parse::<u64>().ok());
    let last = token(1).and_then(|raw| raw.parse::<i64>().ok());
    let cache = &ctx.history;
    if cache.enabled() {
        match (epoch, last) {
            (Some(epoch), Some(last)) => {
                let span = Span::of(range, limit + 1, last);
                if let Some(kept) = cache.get(chat_id, epoch, span) {
                    return Ok(page_json(kept, limit, range, reader));
                }
            }
            _ => cache.count_miss(),
        }
    }
    let rows = MessageRow::history(&ctx.store.db, chat_id.0, range, limit + 1).await?;
    let mut reactions = reactions::load(ctx, rows.iter().map(|e| e.message.id).collect()).await?;
    let rendered = rows
        .into_iter()
        .map(|entry| {
            let (seq, id) = (entry.message.seq, entry.message.id);
            kept(&MessageView::from(entry), reactions.remove(&id)).map(|kept| (seq, kept))
        })
        .collect::<Result<Vec<Rendered>, _>>()?;
    if cache.enabled() {
        match epoch {
            // Kept only when the newest seq is known too: without it nothing is served.
            Some(epoch) if last.is_some() => cache.put(chat_id, epoch, &rendered),
            Some(_) => {}
            // The first reader names the token; what it read is kept from the next read.
            None => {
                let fresh = rand::random::<u64>().to_string();
                ctx.store.cache_fill(&epoch_key, &fresh, ENTITY_TTL).await;
            }
        }
    }
    Ok(page_json(rendered, limit, range, reader))
}

/// What is kept of a message rendered without reactions ([`Kept`]), with its
/// reactions' tallies.
fn kept(view: &MessageView, tallies: Option<Vec<Tally>>) -> Result<Kept, ServiceError> {
    let json = serde_json::to_string(view).map_err(|err| ServiceError::Internal(err.into()))?;
    // `reactions` is the view's last field, rendered empty here.
    let head = json.strip_suffix("]}").ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!(
            "a message's JSON does not end in its reactions"
        ))
    })?;
    Ok(Kept {
        head: Arc::from(head),
        reactions: tallies.map(Arc::from),
    })
}

/// Where the next page of `range` starts after an item at `seq`.
fn position(range: HistoryRange, limit: i64, seq: i64) -> String {
    match range {
        HistoryRange::After(_) => format!("a:{seq}"),
        HistoryRange::Before(_) => format!("b:{seq}"),
        HistoryRange::Offset(offset) => format!("o:{}", offset + limit),
    }
}

/// The JSON of a `Page<MessageView>` from `limit + 1` rendered messages (the extra one
/// only says there is more) as `reader` sees it, exactly as serde writes it.
fn page_json(rendered: Vec<Rendered>, limit: i64, range: HistoryRange, reader: UserId) -> String {
    let page = pagination::page(
        rendered,
        limit,
        |(seq, _)| position(range, limit, *seq),
        |(_, kept)| kept,
    );
    let size: usize = page.items.iter().map(|kept| kept.head.len() + 3).sum();
    let mut body = String::with_capacity(size + 64);
    body.push_str("{\"items\":[");
    for (i, kept) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&kept.head);
        if let Some(tallies) = &kept.reactions {
            reactions::write_json(&mut body, tallies, reader);
        }
        body.push_str("]}");
    }
    body.push_str("],\"next_cursor\":");
    match &page.next_cursor {
        // Cursors are URL-safe base64: nothing to escape.
        Some(cursor) => {
            body.push('"');
            body.push_str(cursor);
            body.push('"');
        }
        None => body.push_str("null"),
    }
    body.push('}');
    body
}

async fn history_page(
    ctx: &AppContext,
    reader: UserId,
    access: &ChatAccess,
    chat_id: ChatId,
    query: HistoryQuery,
) -> Result<Page<MessageView>, ServiceError> {
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    let limit = pagination::limit(query.limit)?;
    let range = range_of(&query)?;
    let rows = MessageRow::history(&ctx.store.db, chat_id.0, range, limit + 1).await?;
    let mut page = pagination::page(
        rows,
        limit,
        |entry| position(range, limit, entry.message.seq),
        MessageView::from,
    );
    reactions::attach(ctx, reader, page.items.iter_mut()).await?;
    Ok(page)
}

/// A new history token for `chat_id`: kept pages of it (here and on every instance)
/// are no longer served. Called after a stored message changed, before answering.
/// Tried twice (the second time on a fresh connection if the first failed); if both fail
/// other instances may serve the old text until the token expires (5 minutes).
pub(crate) async fn history_changed(ctx: &AppContext, chat_id: ChatId) {
    ctx.history.forget(chat_id);
    let key = keys::history_epoch(chat_id.0);
    let fresh = rand::random::<u64>().to_string();
    for attempt in 1..=2 {
        match ctx.store.cache.set(&key, &fresh, ENTITY_TTL).await {
            Ok(()) => return,
            Err(err) => tracing::warn!(error = %err, attempt, "cannot renew a history token"),
        }
    }
}

/// Stores a message and broadcasts it (`chat.message`). With a `client_id` already
/// used by this sender in this chat, returns the original message (`false`) and
/// stores nothing. Over the sender's message budget: 429 (`RateLimited`).
pub async fn send_message(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: SendMessageInput,
) -> Result<(MessageView, bool), ServiceError> {
    send_message_with(ctx, principal, chat_id, input, Pacing::Refuse).await
}

/// [`send_message`] for a sender that can be slowed down (a WebSocket: its socket is not
/// read while it waits): over the budget it waits for it instead of being refused, so
/// nothing is dropped.
pub async fn send_message_paced(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: SendMessageInput,
) -> Result<(MessageView, bool), ServiceError> {
    send_message_with(ctx, principal, chat_id, input, Pacing::Wait).await
}

/// What a send over the message budget does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// Refused with 429.
    Refuse,
    /// Waits for the budget.
    Wait,
}

async fn send_message_with(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: SendMessageInput,
    pacing: Pacing,
) -> Result<(MessageView, bool), ServiceError> {
    begin_send(ctx, principal, chat_id, input, pacing, None)
        .await?
        .outcome(ctx)
        .await
}

/// [`send_message_paced`] in two steps, for a sender with several sends in flight (a
/// WebSocket pipelining its frames): this checks the send and hands it to the writer —
/// sends begun one after the other take seqs in that order in their chat — and the
/// returned [`PendingSend`] waits for its commit.
pub async fn begin_send_paced(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: SendMessageInput,
) -> Result<PendingSend, ServiceError> {
    begin_send(ctx, principal, chat_id, input, Pacing::Wait, None).await
}

/// [`begin_send_paced`] for a socket that already knows the sender may post in
/// `chat_id`: an earlier send there passed the full check, and the socket has followed
/// the chat since (a membership that ends is an event that stops the following). The
/// access read is skipped; `sender` is the username that check found
/// ([`PendingSend::sender`]).
pub async fn begin_send_paced_as_member(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: SendMessageInput,
    member: KnownMember<'_>,
) -> Result<PendingSend, ServiceError> {
    begin_send(ctx, principal, chat_id, input, Pacing::Wait, Some(member)).await
}

/// What a socket knows of its sender in a chat (see [`begin_send_paced_as_member`]).
pub struct KnownMember<'a> {
    /// The username the earlier full check found.
    pub sender: Option<String>,
    /// Whether the socket still follows the chat: asked after any wait for the
    /// sender's budget, so a membership that ended during the wait is checked in full
    /// (and refused).
    pub still_follows: &'a (dyn Fn() -> bool + Sync),
}

/// A send checked and handed to the writer, not yet committed.
#[derive(Debug)]
pub struct PendingSend {
    stage: Stage,
    chat_id: i64,
    sender_id: i64,
    client_id: Option<ClientId>,
    sender: Option<String>,
    checked: bool,
}

impl PendingSend {
    /// The sender's username, as the send's check found it.
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }

    /// Whether the sender's access was read in full for this send (not taken from
    /// what its socket knew).
    pub fn checked_in_full(&self) -> bool {
        self.checked
    }

    /// Waits for the commit: the stored message and `true`, or the original message and
    /// `false` when this `client_id` was used before by the sender in this chat.
    pub async fn outcome(self, ctx: &AppContext) -> Result<(MessageView, bool), ServiceError> {
        let PendingSend {
            stage,
            chat_id,
            sender_id,
            client_id,
            sender,
            ..
        } = self;
        let ticket = match stage {
            Stage::Queued(ticket) => ticket,
            Stage::Resent(existing) => return duplicate(ctx, existing, sender).await,
        };
        // A resent client_id is caught by the unique index (rolling back that message's
        // seq too) rather than by a look-up per send.
        let result = ticket.stored().await;
        let stored = match result {
            Ok(Some(row)) => row,
            Ok(None) => return Err(ServiceError::NotFound(format!("chat {chat_id} not found"))),
            Err(DbError::Conflict { .. }) if client_id.is_some() => {
                // This client_id was used before (a resend, or a concurrent one that won).
                let key = client_id.as_ref().map(ClientId::as_str).unwrap_or_default();
                let existing =
                    MessageRow::find_by_client_id(&ctx.store.db, chat_id, sender_id, key)
                        .await?
                        .ok_or_else(|| {
                            ServiceError::Internal(anyhow::anyhow!(
                                "client_id clashed but no message has it"
                            ))
                        })?;
                return duplicate(ctx, existing, sender).await;
            }
            Err(other) => return Err(other.into()),
        };
        Ok((MessageView::new(stored, sender), true))
    }
}

/// Where a send is.
#[derive(Debug)]
enum Stage {
    /// Handed to the writer.
    Queued(Ticket),
    /// A resend of a message already stored (found before anything was taken).
    Resent(MessageRow),
}

/// The answer to a resend: the original message, as the sender sees it now.
async fn duplicate(
    ctx: &AppContext,
    existing: MessageRow,
    sender: Option<String>,
) -> Result<(MessageView, bool), ServiceError> {
    let reader = existing.sender_id.map(UserId).unwrap_or(UserId(0));
    let mut view = MessageView::new(existing, sender);
    reactions::attach(ctx, reader, [&mut view]).await?;
    Ok((view, false))
}

async fn begin_send(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: SendMessageInput,
    pacing: Pacing,
    member: Option<KnownMember<'_>>,
) -> Result<PendingSend, ServiceError> {
    let budget = format!("user:{}", principal.user_id);
    // A paced send waits first, so access is checked as it stands when the message is
    // stored (a member removed during the wait is refused).
    if pacing == Pacing::Wait {
        ctx.limits.acquire(rate_limit::MESSAGES, &budget).await;
    }
    // After the budget: a throttled sender's wait is its own, not the server's.
    let prepared = std::time::Instant::now();
    let known = member.filter(|member| (member.still_follows)());
    let checked = known.is_none();
    let sender = match known {
        Some(member) => member.sender,
        None => {
            let (access, profile) = access_with(ctx, principal, chat_id, Profile::Include).await?;
            permissions::post_in_chat(access.actor).map_err(denied)?;
            if access.header.blocked {
                return Err(crate::users::unreachable());
            }
            profile.map(|u| u.username)
        }
    };
    let mut errors = FieldErrors::new();
    // A message of files alone has no text.
    let files_only = !input.attachments.is_empty() && input.content.trim().is_empty();
    let body = if files_only {
        None
    } else {
        errors.check("content", MessageBody::parse(&input.content))
    };
    let client_id = input
        .client_id
        .as_deref()
        .and_then(|c| errors.check("client_id", ClientId::parse(c)));
    let body = errors.finish(|| body)?;
    let text = match &body {
        Some(body) => body.as_str(),
        None if files_only => "",
        None => return Err(ServiceError::invalid("content", "is required")),
    };
    if pacing == Pacing::Refuse {
        ctx.limits.check(rate_limit::MESSAGES, &budget)?;
    }
    if let Some(reply_to) = input.reply_to {
        MessageRow::find(&ctx.store.db, chat_id.0, reply_to)
            .await?
            .ok_or_else(|| ServiceError::invalid("reply_to", "is not a message of this chat"))?;
    }
    // Resolved once, here: only members are mentioned, and a name that is not one is
    // left as text (nothing tells the sender whether such a user exists).
    // A resend of files already sent finds its message before it would try (and fail)
    // to take them again.
    if let Some(key) = &client_id
        && !input.attachments.is_empty()
        && let Some(existing) = MessageRow::find_by_client_id(
            &ctx.store.db,
            chat_id.0,
            principal.user_id.0,
            key.as_str(),
        )
        .await?
    {
        return Ok(PendingSend {
            stage: Stage::Resent(existing),
            chat_id: chat_id.0,
            sender_id: principal.user_id.0,
            client_id,
            sender,
            checked,
        });
    }
    let names = mentioned_names(text);
    let mentioned = if names.is_empty() {
        Vec::new()
    } else {
        MembershipRow::mentioned(&ctx.store.db, chat_id.0, principal.user_id.0, names).await?
    };
    let mention_ids: Vec<i64> = mentioned.iter().map(|(id, _)| *id).collect();
    // Checked last, just before the writer takes it: a send accepted from here on is
    // committed before the process exits; one refused here was never stored.
    ctx.lifecycle.accepting()?;
    // Taken last too: every refusal above leaves the files free.
    let attached =
        crate::attachments::claim(ctx, principal.user_id, chat_id, &input.attachments).await?;
    let claimed: Vec<i64> = attached.iter().map(|a| a.id).collect();
    // Until the writer has the send (it gives the files back if it does not store it),
    // any way out of here — an error, or the caller going away — gives them back.
    let guard = crate::attachments::ClaimGuard::new(ctx, claimed.clone());
    ctx.metrics
        .message_prepare
        .observe(prepared.elapsed().as_secs_f64());
    let pending = PendingMessage {
        chat_id: chat_id.0,
        sender_id: principal.user_id.0,
        content: text.to_owned(),
        client_id: client_id.as_ref().map(|c| c.as_str().to_owned()),
        reply_to: input.reply_to,
        created_at: chat_db::now(),
        sender: sender.clone(),
        mentions: mention_text(&mention_ids),
        notify: mentioned
            .into_iter()
            .filter_map(|(id, notify)| notify.then_some(UserId(id)))
            .collect(),
        attachments: if attached.is_empty() {
            None
        } else {
            match serde_json::to_string(&attached) {
                Ok(json) => Some((claimed.clone(), json)),
                Err(err) => return Err(ServiceError::Internal(err.into())),
            }
        },
    };
    // Stored and published by the group-commit writer.
    let ticket = match ctx.writer.enqueue(pending).await {
        Ok(ticket) => ticket,
        Err(err) => return Err(err.into()),
    };
    guard.disarm();
    Ok(PendingSend {
        stage: Stage::Queued(ticket),
        chat_id: chat_id.0,
        sender_id: principal.user_id.0,
        client_id,
        sender,
        checked,
    })
}

async fn load_message(
    ctx: &AppContext,
    chat_id: ChatId,
    message_id: MessageId,
) -> Result<MessageRow, ServiceError> {
    MessageRow::find(&ctx.store.db, chat_id.0, message_id.0)
        .await?
        .ok_or_else(|| {
            ServiceError::NotFound(format!("message {message_id} not found in chat {chat_id}"))
        })
}

/// Changes a message's text (its author, while still a member).
pub async fn edit_message(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    message_id: MessageId,
    content: &str,
) -> Result<MessageView, ServiceError> {
    let (access, profile) = access_with(ctx, principal, chat_id, Profile::Include).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    if access.header.blocked {
        return Err(crate::users::unreachable());
    }
    let message = load_message(ctx, chat_id, message_id).await?;
    permissions::edit_message(principal.user_id.0, message.sender_id).map_err(denied)?;
    let body = MessageBody::parse(content).map_err(|m| ServiceError::invalid("content", m))?;
    // Each edit is a write, a broadcast to the chat and a reload of its cached history.
    ctx.limits.check(
        rate_limit::MESSAGE_EDIT,
        &format!("user:{}", principal.user_id),
    )?;
    let edited = MessageRow::edit(&ctx.store.db, message_id.0, body.as_str(), chat_db::now())
        .await?
        .ok_or_else(|| ServiceError::Conflict {
            code: "message_deleted",
            detail: "a deleted message cannot be edited".to_owned(),
        })?;
    history_changed(ctx, chat_id).await;
    let edited_at = edited.edited_at.map(utc).unwrap_or_else(chrono::Utc::now);
    let event = ChatEvent::MessageEdited {
        chat_id,
        id: MessageId(edited.id),
        seq: Seq(edited.seq),
        message: edited.content.clone(),
        edited_at,
    };
    publish_chat(ctx, chat_id, &event).await;
    let sender = profile.map(|u| u.username);
    let mut view = MessageView::new(edited, sender);
    reactions::attach(ctx, principal.user_id, [&mut view]).await?;
    Ok(view)
}

/// Soft-deletes a message (author, chat owner/admins, site admins): the text is
/// blanked for everyone. Deleting a deleted message changes nothing.
pub async fn delete_message(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    message_id: MessageId,
) -> Result<(), ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    let message = load_message(ctx, chat_id, message_id).await?;
    permissions::delete_message(access.actor, principal.user_id.0, message.sender_id)
        .map_err(denied)?;
    if let Some((deleted, files)) =
        MessageRow::soft_delete(&ctx.store.db, message_id.0, chat_db::now()).await?
    {
        history_changed(ctx, chat_id).await;
        // Their rows went with the deletion: the files are never served again, whether
        // or not removing them works now.
        crate::attachments::remove_files(ctx, &files).await;
        let deleted_at = deleted.deleted_at.map(utc).unwrap_or_else(chrono::Utc::now);
        let event = ChatEvent::MessageDeleted {
            chat_id,
            id: MessageId(deleted.id),
            seq: Seq(deleted.seq),
            deleted_by: principal.user_id,
            deleted_at,
        };
        publish_chat(ctx, chat_id, &event).await;
    }
    Ok(())
}

/// Moves the caller's read marker forward to `seq` (clamped to the chat's last seq);
/// never backwards. Broadcasts `chat.read` when it moved.
pub async fn mark_read(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    seq: Seq,
) -> Result<ReadMarker, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    if seq.0 < 0 {
        return Err(ServiceError::invalid("seq", "must not be negative"));
    }
    let chat = ChatRow::find(&ctx.store.db, chat_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("chat {chat_id} not found")))?;
    let target = seq.min(Seq(chat.last_seq));
    if let Some(moved) =
        MembershipRow::mark_read(&ctx.store.db, chat_id.0, principal.user_id.0, target.0).await?
    {
        publish_chat(
            ctx,
            chat_id,
            &ChatEvent::Read {
                chat_id,
                user_id: principal.user_id,
                seq: Seq(moved.last_read_seq),
            },
        )
        .await;
    }
    let membership = MembershipRow::find(&ctx.store.db, chat_id.0, principal.user_id.0)
        .await?
        .ok_or_else(|| {
            ServiceError::forbidden("not_a_member", "you are not a member of this chat")
        })?;
    Ok(ReadMarker {
        chat_id,
        last_read_seq: membership.last_read_seq,
        unread_count: (chat.last_seq - membership.last_read_seq).max(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactions::ReactionView;
    use chat_db::models::ReactionRow;

    fn view(seq: i64) -> MessageView {
        let at = chrono::DateTime::from_timestamp(1_700_000_000 + seq, 0)
            .map(|t| t.naive_utc())
            .unwrap_or_default();
        MessageView::new(
            MessageRow {
                id: 100 + seq,
                chat_id: 7,
                sender_id: Some(3),
                seq,
                content: format!("m{seq} \"quoted\" \u{e9}\n"),
                client_id: (seq % 2 == 0).then(|| format!("c-{seq}")),
                reply_to: None,
                created_at: at,
                edited_at: (seq == 2).then_some(at),
                deleted_at: None,
                mentions: (seq == 3).then(|| "3,9".to_owned()),
                attachments: None,
            },
            Some("ann".to_owned()),
        )
    }

    /// Message 100 + seq's reactions: on odd seqs, 👍 by users 3 and 4, then 🎉 by 5.
    fn tallies_of(seq: i64) -> Option<Vec<Tally>> {
        let id = 100 + seq;
        let rows = vec![
            ReactionRow {
                message_id: id,
                emoji: "👍".to_owned(),
                user_id: 3,
            },
            ReactionRow {
                message_id: id,
                emoji: "🎉".to_owned(),
                user_id: 5,
            },
            ReactionRow {
                message_id: id,
                emoji: "👍".to_owned(),
                user_id: 4,
            },
        ];
        (seq % 2 == 1)
            .then(|| reactions::tallies(rows).remove(&id))
            .flatten()
    }

    /// [`view`] with its reactions as `reader` sees them.
    fn seen_by(seq: i64, reader: UserId) -> MessageView {
        let mut view = view(seq);
        view.reactions = tallies_of(seq)
            .unwrap_or_default()
            .iter()
            .map(|t| t.view(reader))
            .collect::<Vec<ReactionView>>();
        view
    }

    #[test]
    fn pages_assembled_from_rendered_messages_are_what_serde_writes() -> anyhow::Result<()> {
        for (fetched, limit, range) in [
            (vec![5, 4, 3], 2, HistoryRange::Before(None)),
            (vec![2, 1], 2, HistoryRange::Before(Some(3))),
            (vec![3, 4, 5], 2, HistoryRange::After(2)),
            (vec![4, 3, 2], 2, HistoryRange::Offset(1)),
            (vec![1], 1, HistoryRange::Before(Some(2))),
            (vec![], 50, HistoryRange::After(9)),
        ] {
            for reader in [UserId(4), UserId(8)] {
                let rendered = fetched
                    .iter()
                    .map(|seq| Ok((*seq, kept(&view(*seq), tallies_of(*seq))?)))
                    .collect::<anyhow::Result<Vec<Rendered>>>()?;
                let expected = pagination::page(
                    fetched.clone(),
                    limit,
                    |seq| position(range, limit, *seq),
                    |seq| seen_by(seq, reader),
                );
                assert_eq!(
                    page_json(rendered, limit, range, reader),
                    serde_json::to_string(&expected)?
                );
            }
        }
        Ok(())
    }
}
