//! Direct (one-to-one) chats: get-or-create per user pair.

use chat_db::DbError;
use chat_db::models::{ChatRow, FriendshipRow, NewChat};
use chat_domain::Role;
use chat_domain::UserId;
use chat_domain::chat::direct_key;
use chat_domain::{ChatId, Seq};
use chat_selectors::chats::put_membership;
use chat_selectors::users::user_profile;

use crate::auth::Principal;
use crate::chats::ChatView;
use crate::chats::groups::full_view;
use crate::events::{ChatEvent, Notification, notify, publish_joined};
use crate::{AppContext, ServiceError};

/// The direct chat between the caller and `user_id`, created if needed (`true` when
/// created). At most one exists per pair, also when both sides open it at once: the
/// pair key is unique, and the loser of the race reads the winner's chat.
pub async fn open_direct(
    ctx: &AppContext,
    principal: &Principal,
    user_id: UserId,
) -> Result<(ChatView, bool), ServiceError> {
    if user_id == principal.user_id {
        return Err(ServiceError::invalid(
            "user_id",
            "you cannot open a direct chat with yourself",
        ));
    }
    let other = user_profile(&ctx.store, user_id.0)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    let key = direct_key(principal.user_id.0, user_id.0);
    if let Some(chat) = ChatRow::find_direct(&ctx.store.db, &key).await? {
        return Ok((full_view(ctx, chat, principal.user_id).await?, false));
    }
    crate::users::ensure_reachable(ctx, principal.user_id, user_id).await?;
    if ctx.chat.direct_requires_friendship {
        let friends = FriendshipRow::find_pair(&ctx.store.db, principal.user_id.0, user_id.0)
            .await?
            .is_some_and(|f| f.status == "accepted");
        if !friends {
            return Err(ServiceError::forbidden(
                "friendship_required",
                "you can only open direct chats with friends",
            ));
        }
    }
    for member in [principal.user_id, user_id] {
        crate::chats::groups::ensure_room_for_chat(ctx, member).await?;
    }
    let now = chat_db::now();
    let new = NewChat {
        kind: "direct",
        name: None,
        description: None,
        visibility: "private",
        direct_key: Some(&key),
        created_by: Some(principal.user_id.0),
        created_at: now,
        last_activity_at: now,
        member_count: 2,
    };
    let members = [
        (principal.user_id.0, Role::Member.as_str()),
        (other.id, Role::Member.as_str()),
    ];
    match ChatRow::create(&ctx.store.db, new, &members).await {
        Ok((chat, _)) => {
            // Read now that the chat exists: a block made after the check above found no
            // chat to mark, and the header written here must carry it. Read once more
            // after writing: a block committed meanwhile may have written its header
            // before this one landed.
            let header = chat_selectors::chats::direct_header(&ctx.store, &chat).await?;
            chat_selectors::chats::put_chat_header(&ctx.store, chat.id, Some(&header)).await;
            let again = chat_selectors::chats::direct_header(&ctx.store, &chat).await?;
            if again != header {
                chat_selectors::chats::put_chat_header(&ctx.store, chat.id, Some(&again)).await;
            }
            for (member, _) in members {
                put_membership(&ctx.store, chat.id, member, Some(Role::Member)).await;
            }
            // `/ws` sockets follow a chat when a `chat.member_joined` of it passes on
            // their user's topic: without these, the sockets both members already hold
            // would hear nothing of the new chat until they reconnect.
            let own_name = user_profile(&ctx.store, principal.user_id.0)
                .await?
                .map(|p| p.username)
                .unwrap_or_default();
            let joins = [
                (principal.user_id, own_name, None),
                (
                    UserId(other.id),
                    other.username.clone(),
                    Some(principal.user_id),
                ),
            ]
            .map(|(user_id, username, added_by)| ChatEvent::MemberJoined {
                chat_id: ChatId(chat.id),
                user_id,
                username,
                role: Role::Member,
                added_by,
                last_seq: Seq(chat.last_seq),
            });
            publish_joined(
                ctx,
                ChatId(chat.id),
                &[principal.user_id, UserId(other.id)],
                &joins,
                false,
            )
            .await;
            notify(
                ctx,
                UserId(other.id),
                &Notification::AddedToChat {
                    chat_id: ChatId(chat.id),
                    by_user_id: principal.user_id,
                },
            )
            .await;
            Ok((full_view(ctx, chat, principal.user_id).await?, true))
        }
        Err(DbError::Conflict { .. }) => {
            let chat = ChatRow::find_direct(&ctx.store.db, &key)
                .await?
                .ok_or_else(|| {
                    ServiceError::Internal(anyhow::anyhow!(
                        "direct chat {key} clashed but is not there"
                    ))
                })?;
            Ok((full_view(ctx, chat, principal.user_id).await?, false))
        }
        Err(other) => Err(other.into()),
    }
}
