//! Loading what a permission rule needs: the chat's header and the caller's role,
//! both through the cache.

use chat_domain::permissions::{Actor, Denied};
use chat_selectors::chats::{ChatHeader, chat_header, membership_role};

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
    let header = chat_header(&ctx.store, chat_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("chat {chat_id} not found")))?;
    let role = membership_role(&ctx.store, chat_id, principal.user_id).await?;
    Ok(ChatAccess {
        header,
        actor: Actor {
            role,
            site_admin: principal.is_admin,
        },
    })
}
