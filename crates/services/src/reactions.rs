//! Emoji reactions to messages: add and take back (idempotent, members only), and the
//! `reactions: [{emoji, count, me}]` every rendered message carries.
//!
//! `me` differs per reader while the rest of a message is the same for everyone, so
//! what is kept of a message (in memory, [`crate::history_cache`]) is who chose which
//! emoji ([`Tally`]), and each reader's list is written from it when a page is served.

use chat_db::models::{ReactionOutcome, ReactionRow};
use chat_domain::permissions;
use chat_domain::reaction::MAX_DISTINCT_REACTIONS;
use chat_domain::{ChatId, Emoji, MessageId, Seq, UserId};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::chats::{MessageView, access, denied};
use crate::events::{ChatEvent, publish_chat};
use crate::{AppContext, ServiceError, rate_limit};

/// One emoji on a message, as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReactionView {
    /// The emoji sequence.
    pub emoji: String,
    /// How many members chose it.
    pub count: i64,
    /// Whether the reader did.
    pub me: bool,
}

/// A message's reactions after a change (the answer to `PUT`/`DELETE …/reactions/…`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageReactions {
    /// Chat.
    #[schema(value_type = i64)]
    pub chat_id: ChatId,
    /// Message.
    #[schema(value_type = i64)]
    pub message_id: MessageId,
    /// Its reactions, in the order first used.
    pub reactions: Vec<ReactionView>,
}

/// Who chose one emoji on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The emoji.
    pub emoji: Box<str>,
    /// Who chose it, in the order they did.
    pub users: Box<[i64]>,
}

impl Tally {
    /// As `reader` sees it.
    pub fn view(&self, reader: UserId) -> ReactionView {
        ReactionView {
            emoji: self.emoji.to_string(),
            count: i64::try_from(self.users.len()).unwrap_or(i64::MAX),
            me: self.users.contains(&reader.0),
        }
    }
}

/// Reactions grouped by message, each message's emoji in the order first used.
pub fn tallies(rows: Vec<ReactionRow>) -> HashMap<i64, Vec<Tally>> {
    let mut grouped: HashMap<i64, Vec<(String, Vec<i64>)>> = HashMap::new();
    for row in rows {
        let emojis = grouped.entry(row.message_id).or_default();
        match emojis.iter_mut().find(|(emoji, _)| *emoji == row.emoji) {
            Some((_, users)) => users.push(row.user_id),
            None => emojis.push((row.emoji, vec![row.user_id])),
        }
    }
    grouped
        .into_iter()
        .map(|(message, emojis)| {
            let tallies = emojis
                .into_iter()
                .map(|(emoji, users)| Tally {
                    emoji: emoji.into(),
                    users: users.into(),
                })
                .collect();
            (message, tallies)
        })
        .collect()
}

/// Reactions of `message_ids`, grouped ([`tallies`]).
pub async fn load(
    ctx: &AppContext,
    message_ids: Vec<i64>,
) -> Result<HashMap<i64, Vec<Tally>>, ServiceError> {
    Ok(tallies(
        ReactionRow::of_messages(&ctx.store.db, message_ids).await?,
    ))
}

/// Fills in the `reactions` of `views` as `reader` sees them: one query for all.
pub async fn attach<'a>(
    ctx: &AppContext,
    reader: UserId,
    views: impl IntoIterator<Item = &'a mut MessageView>,
) -> Result<(), ServiceError> {
    let views: Vec<&mut MessageView> = views.into_iter().collect();
    if views.is_empty() {
        return Ok(());
    }
    let mut found = load(ctx, views.iter().map(|v| v.id.0).collect()).await?;
    for view in views {
        if let Some(tallies) = found.remove(&view.id.0) {
            view.reactions = tallies.iter().map(|t| t.view(reader)).collect();
        }
    }
    Ok(())
}

/// Appends `tallies` as `reader` sees them, as serde writes a `Vec<ReactionView>`'s
/// items (without the brackets).
pub fn write_json(out: &mut String, tallies: &[Tally], reader: UserId) {
    for (i, tally) in tallies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let view = tally.view(reader);
        match serde_json::to_string(&view) {
            Ok(json) => out.push_str(&json),
            // A struct of a string, an integer and a bool always serializes.
            Err(err) => tracing::error!(error = %err, "cannot render a reaction"),
        }
    }
}

/// Adds (`add`) or takes back the caller's `emoji` reaction to a message. Members only
/// (in a direct chat under a block: 403 `user_unreachable`); idempotent; a deleted
/// message takes none (409); a message holds at most
/// [`MAX_DISTINCT_REACTIONS`] different emoji (409 `too_many_reactions`). A change is
/// broadcast as `chat.reaction`.
pub async fn set_reaction(
    ctx: &AppContext,
    principal: &Principal,
    (chat_id, message_id): (ChatId, MessageId),
    emoji: &str,
    add: bool,
) -> Result<MessageReactions, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    if access.header.blocked {
        return Err(crate::users::unreachable());
    }
    let emoji = Emoji::parse(emoji).map_err(|m| ServiceError::invalid("emoji", m))?;
    ctx.limits.check(
        rate_limit::REACTIONS,
        &format!("user:{}", principal.user_id),
    )?;
    let db = &ctx.store.db;
    let ids = (chat_id.0, message_id.0);
    let user = principal.user_id.0;
    let outcome = if add {
        let now = chat_db::now();
        ReactionRow::add(db, ids, user, emoji.as_str(), MAX_DISTINCT_REACTIONS, now).await?
    } else {
        ReactionRow::remove(db, ids, user, emoji.as_str()).await?
    };
    let (count, changed) = match outcome {
        ReactionOutcome::NoMessage => {
            return Err(ServiceError::NotFound(format!(
                "message {message_id} not found in chat {chat_id}"
            )));
        }
        ReactionOutcome::MessageDeleted => {
            return Err(ServiceError::Conflict {
                code: "message_deleted",
                detail: "a deleted message takes no reactions".to_owned(),
            });
        }
        ReactionOutcome::TooMany => {
            return Err(ServiceError::Conflict {
                code: "too_many_reactions",
                detail: format!(
                    "a message carries at most {MAX_DISTINCT_REACTIONS} different reactions"
                ),
            });
        }
        ReactionOutcome::Done { count, changed } => (count, changed),
    };
    if changed {
        crate::messages::history_changed(ctx, chat_id).await;
        let seq = chat_db::models::MessageRow::find(db, chat_id.0, message_id.0)
            .await?
            .map_or(Seq(0), |m| Seq(m.seq));
        let event = ChatEvent::Reaction {
            chat_id,
            message_id,
            seq,
            user_id: principal.user_id,
            emoji: emoji.as_str().to_owned(),
            added: add,
            count,
        };
        publish_chat(ctx, chat_id, &event).await;
    }
    let reactions = load(ctx, vec![message_id.0])
        .await?
        .remove(&message_id.0)
        .unwrap_or_default()
        .iter()
        .map(|t| t.view(principal.user_id))
        .collect();
    Ok(MessageReactions {
        chat_id,
        message_id,
        reactions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(message_id: i64, emoji: &str, user_id: i64) -> ReactionRow {
        ReactionRow {
            message_id,
            emoji: emoji.to_owned(),
            user_id,
        }
    }

    #[test]
    fn tallies_keep_the_order_emoji_were_first_used() {
        let grouped = tallies(vec![
            row(1, "👍", 3),
            row(1, "🎉", 4),
            row(1, "👍", 5),
            row(2, "❤️", 3),
        ]);
        let first = grouped.get(&1).map(Vec::as_slice).unwrap_or_default();
        let views: Vec<ReactionView> = first.iter().map(|t| t.view(UserId(5))).collect();
        assert_eq!(
            views,
            vec![
                ReactionView {
                    emoji: "👍".to_owned(),
                    count: 2,
                    me: true
                },
                ReactionView {
                    emoji: "🎉".to_owned(),
                    count: 1,
                    me: false
                },
            ]
        );
        assert_eq!(grouped.get(&2).map(Vec::len), Some(1));
    }

    #[test]
    fn written_reactions_are_what_serde_writes() -> anyhow::Result<()> {
        let grouped = tallies(vec![row(1, "👍", 3), row(1, "🎉", 4)]);
        let tallies = grouped.get(&1).map(Vec::as_slice).unwrap_or_default();
        let mut out = String::from("[");
        write_json(&mut out, tallies, UserId(4));
        out.push(']');
        let views: Vec<ReactionView> = tallies.iter().map(|t| t.view(UserId(4))).collect();
        assert_eq!(out, serde_json::to_string(&views)?);
        Ok(())
    }
}
