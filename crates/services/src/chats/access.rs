//! Loading what a permission rule needs: the chat's header and the caller's role,
//! both through the cache.

use chat_domain::permissions::{Actor, Denied};
use chat_selectors::chats::{ChatHeader, chat_access};
use chat_selectors::users::UserProfile;

use crate::auth::Principal;
use crate::{AppContext, ServiceError};

/// The chat and who the caller is in it.
#[derive(Debug, Clone)]
pub(crate) struct ChatAccess {
    /// Kind, visibility, name.
    pub header: ChatHeader,
    /// The caller's role and site-admin flag.
    pub actor: Actor,
}

/// A rule's refusal as a 403.
pub(crate) fn denied(d: Denied) -> ServiceError {
    ServiceError::forbidden(d.code, d.reason)
}

/// The chat (404 if it does not exist) and the caller's standing in it.
pub(crate) async fn access(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: i64,
) -> Result<ChatAccess, ServiceError> {
    Ok(access_with(ctx, principal, chat_id, false).await?.0)
}

/// [`access`] plus the caller's profile (`with_profile`), all read from the cache in one
/// round trip: what a send needs.
pub(crate) async fn access_with(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: i64,
    with_profile: bool,
) -> Result<(ChatAccess, Option<UserProfile>), ServiceError> {
    let read = chat_access(&ctx.store, chat_id, principal.user_id, with_profile).await?;
    let header = read
        .header
        .ok_or_else(|| ServiceError::NotFound(format!("chat {chat_id} not found")))?;
    Ok((
        ChatAccess {
            header,
            actor: Actor {
                role: read.role,
                site_admin: principal.is_admin,
            },
        },
        read.profile,
    ))
}
