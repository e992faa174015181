//! Loading what a permission rule needs: the chat's header and the caller's role,
//! both through the cache.

use chat_domain::ChatId;
use chat_domain::UserId;
use chat_domain::permissions::{Actor, Denied};
use chat_domain::{ChatKind, Role, Visibility};
use chat_selectors::chats::{
    AccessRead, ChatHeader, Profile, chat_access, session_and_chat_access,
};
use chat_selectors::users::UserProfile;

use crate::auth::tokens::AccessClaims;
use crate::auth::{Principal, session_ended};
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
    chat_id: ChatId,
) -> Result<ChatAccess, ServiceError> {
    Ok(access_with(ctx, principal, chat_id, Profile::Skip).await?.0)
}

/// [`access`] plus, with [`Profile::Include`], the caller's profile, all read from the cache in one
/// round trip: what a send needs.
pub(crate) async fn access_with(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    profile: Profile,
) -> Result<(ChatAccess, Option<UserProfile>), ServiceError> {
    let read = chat_access(&ctx.store, chat_id.0, principal.user_id.0, profile).await?;
    access_from(principal, chat_id, read)
}

/// Finishes authenticating a verified access token (as [`crate::auth::authenticate`]
/// does: 401 if its session has ended) and reads the caller's access to `chat_id` — the
/// session and the access entries in **one** cache round trip instead of two. The raw
/// cache values of `extra` keys come back from the same round trip.
pub(crate) async fn authenticated_access(
    ctx: &AppContext,
    claims: AccessClaims,
    chat_id: ChatId,
    extra: &[&str],
) -> Result<(ChatAccess, Vec<Option<String>>), ServiceError> {
    let user_id: i64 = claims.sub.parse().map_err(|_| session_ended())?;
    let (session, read, extra) =
        session_and_chat_access(&ctx.store, &claims.sid, user_id, chat_id.0, extra).await?;
    let session = session.ok_or_else(session_ended)?;
    let principal = Principal {
        user_id: UserId(session.user_id),
        session_id: claims.sid,
        is_admin: session.is_admin,
    };
    Ok((access_from(&principal, chat_id, read)?.0, extra))
}

/// Whether the caller may know the chat exists: its members; anyone, for a public
/// group; site admins, for any group. Everyone else is told "not found", exactly as for
/// a chat that does not exist (SPEC §4, visibility).
fn visible(header: &ChatHeader, role: Option<Role>, site_admin: bool) -> bool {
    role.is_some()
        || (header.kind == ChatKind::Group
            && (header.visibility == Visibility::Public || site_admin))
}

fn access_from(
    principal: &Principal,
    chat_id: ChatId,
    read: AccessRead,
) -> Result<(ChatAccess, Option<UserProfile>), ServiceError> {
    let not_found = || ServiceError::NotFound(format!("chat {chat_id} not found"));
    let header = read.header.ok_or_else(not_found)?;
    if !visible(&header, read.role, principal.is_admin) {
        return Err(not_found());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_groups_are_visible_to_outsiders() {
        let header = |kind, visibility| ChatHeader {
            id: 1,
            kind,
            visibility,
            name: None,
            blocked: false,
        };
        let public = header(ChatKind::Group, Visibility::Public);
        let private = header(ChatKind::Group, Visibility::Private);
        let direct = header(ChatKind::Direct, Visibility::Private);
        assert!(visible(&public, None, false));
        assert!(!visible(&private, None, false));
        assert!(!visible(&direct, None, false));
        assert!(visible(&private, None, true), "site admins moderate groups");
        assert!(!visible(&direct, None, true), "direct chats stay private");
        assert!(visible(&direct, Some(Role::Member), false));
    }
}
