//! The caller's chat list.

use std::collections::HashMap;

use chat_db::models::{BlockRow, ChatRow, MembershipRow};
use chrono::NaiveDateTime;

use crate::auth::Principal;
use crate::chats::groups::count_for;
use crate::chats::views::{ChatView, MEMBER_PREVIEW_MAX, MemberView, MessageView};
use crate::pagination::{self, Page};
use crate::presence::online_now;
use crate::{AppContext, ServiceError};

fn decode(cursor: &str) -> Result<(NaiveDateTime, i64), ServiceError> {
    let raw = pagination::decode_cursor(cursor)?;
    let bad = || ServiceError::invalid("cursor", "is not a cursor this server issued");
    let (micros, id) = raw.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(bad)?
        .naive_utc();
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// My chats, most recent activity first, with my role, unread count, last message,
/// and members (for chats of at most 20). Two queries per page, however many chats.
pub async fn list_chats(
    ctx: &AppContext,
    principal: &Principal,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<ChatView>, ServiceError> {
    let limit = pagination::limit(limit)?;
    let after = cursor.map(decode).transpose()?;
    let entries =
        ChatRow::list_for_user(&ctx.store.db, principal.user_id.0, after, limit + 1).await?;
    let small: Vec<i64> = entries
        .iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .filter(|e| e.chat.member_count <= MEMBER_PREVIEW_MAX)
        .map(|e| e.chat.id)
        .collect();
    let mut members: HashMap<i64, Vec<MemberView>> = HashMap::new();
    let previews = MembershipRow::members_of(&ctx.store.db, &small).await?;
    // The members' presence: one read for the whole page.
    let online = online_now(ctx, previews.iter().map(|e| e.user.id)).await;
    // The other side of a direct chat under a block shows no presence.
    let direct: std::collections::HashSet<i64> = entries
        .iter()
        .filter(|e| e.chat.kind == "direct")
        .map(|e| e.chat.id)
        .collect();
    let blocked: Vec<i64> = if direct.is_empty() {
        Vec::new()
    } else {
        BlockRow::partners_of(&ctx.store.db, principal.user_id.0).await?
    };
    for entry in previews {
        let chat = entry.membership.chat_id;
        let mut view = MemberView::new(entry, &online);
        if direct.contains(&chat) && blocked.contains(&view.user_id.0) {
            view.hide_presence();
        }
        members.entry(chat).or_default().push(view);
    }
    let mentions = MembershipRow::unread_mentions(&ctx.store.db, principal.user_id.0, None).await?;
    let mut page = pagination::page(
        entries,
        limit,
        |e| {
            format!(
                "{}:{}",
                e.chat.last_activity_at.and_utc().timestamp_micros(),
                e.chat.id
            )
        },
        |e| {
            let last = e.last_message.map(|m| MessageView::new(m, e.last_sender));
            let preview = (e.chat.member_count <= MEMBER_PREVIEW_MAX)
                .then(|| members.remove(&e.chat.id).unwrap_or_default());
            let mut view = ChatView::new(e.chat, Some(&e.membership), last, preview);
            view.unread_mentions = Some(count_for(&mentions, view.id.0));
            view
        },
    );
    let lasts = page
        .items
        .iter_mut()
        .filter_map(|c| c.last_message.as_mut());
    crate::reactions::attach(ctx, principal.user_id, lasts).await?;
    Ok(page)
}
