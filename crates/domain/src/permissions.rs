//! Who may do what in a chat: the permission matrix of SPEC §4 as pure rules.
//!
//! Every rule takes the [`Actor`] (their role in the chat, if any, and whether they are
//! a site admin) and answers `Ok(())` or a [`Denied`] with a stable code. Services call
//! these after loading the facts; nothing here touches storage.

use crate::chat::{ChatKind, Role, Visibility};

/// The caller, as far as one chat is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// Their role in the chat, `None` when not a member.
    pub role: Option<Role>,
    /// Site administrator (manages any group's members, moderates any message).
    pub site_admin: bool,
}

/// A refusal: a stable code and a reason for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// Machine-readable code.
    pub code: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Result of a rule.
pub type Rule = Result<(), Denied>;

const fn deny(code: &'static str, reason: &'static str) -> Rule {
    Err(Denied { code, reason })
}

fn is_manager(actor: Actor) -> bool {
    matches!(actor.role, Some(Role::Owner | Role::Admin))
}

/// See the chat, its members and its history. Members; site admins for groups (to
/// moderate). Direct chats are private to their two members.
pub fn view_chat(kind: ChatKind, actor: Actor) -> Rule {
    if actor.role.is_some() || (actor.site_admin && kind == ChatKind::Group) {
        Ok(())
    } else {
        deny("not_a_member", "you are not a member of this chat")
    }
}

/// Send messages and move the read marker: members only.
pub fn post_in_chat(actor: Actor) -> Rule {
    if actor.role.is_some() {
        Ok(())
    } else {
        deny("not_a_member", "you are not a member of this chat")
    }
}

/// Change a group's name, description or visibility: owner and admins (and site admins).
pub fn update_chat(kind: ChatKind, actor: Actor) -> Rule {
    if kind == ChatKind::Direct {
        return deny("direct_chat", "direct chats have no settings to change");
    }
    if is_manager(actor) || actor.site_admin {
        Ok(())
    } else {
        deny(
            "forbidden",
            "only the owner and admins may change this group",
        )
    }
}

/// Delete a group: its owner (and site admins). Direct chats are not deleted.
pub fn delete_chat(kind: ChatKind, actor: Actor) -> Rule {
    if kind == ChatKind::Direct {
        return deny("direct_chat", "direct chats cannot be deleted");
    }
    if actor.role == Some(Role::Owner) || actor.site_admin {
        Ok(())
    } else {
        deny("forbidden", "only the owner may delete this group")
    }
}

/// Join by oneself: public groups, when not already a member.
pub fn join_chat(kind: ChatKind, visibility: Visibility, actor: Actor) -> Rule {
    if kind == ChatKind::Direct {
        return deny("direct_chat", "direct chats cannot be joined");
    }
    if actor.role.is_some() {
        return deny("already_member", "you are already a member of this chat");
    }
    if visibility == Visibility::Private {
        return deny(
            "private_chat",
            "this group is private; ask its owner or an admin to add you",
        );
    }
    Ok(())
}

/// Leave: any member of a group but its owner, who hands ownership over first.
pub fn leave_chat(kind: ChatKind, actor: Actor) -> Rule {
    match (kind, actor.role) {
        (ChatKind::Direct, _) => deny("direct_chat", "direct chats cannot be left"),
        (_, None) => deny("not_a_member", "you are not a member of this chat"),
        (_, Some(Role::Owner)) => deny(
            "owner_cannot_leave",
            "hand ownership to another member first, or delete the group",
        ),
        _ => Ok(()),
    }
}

/// Add someone to a group: owner and admins, or any site admin (seed 001's closed chats).
pub fn add_member(kind: ChatKind, actor: Actor) -> Rule {
    if kind == ChatKind::Direct {
        return deny("direct_chat", "direct chats have exactly two members");
    }
    if is_manager(actor) || actor.site_admin {
        Ok(())
    } else {
        deny("forbidden", "only the owner and admins may add members")
    }
}

/// Remove `target` from a group: the owner removes anyone else; admins remove plain
/// members; site admins anyone but the owner. Nobody removes the owner.
pub fn remove_member(kind: ChatKind, actor: Actor, target: Role) -> Rule {
    if kind == ChatKind::Direct {
        return deny("direct_chat", "direct chats have exactly two members");
    }
    if target == Role::Owner {
        return deny(
            "cannot_remove_owner",
            "the owner cannot be removed; ownership must be handed over first",
        );
    }
    match actor.role {
        Some(Role::Owner) => Ok(()),
        Some(Role::Admin) if target == Role::Member => Ok(()),
        Some(Role::Admin) => deny("forbidden", "admins may remove members, not other admins"),
        _ if actor.site_admin => Ok(()),
        _ => deny("forbidden", "only the owner and admins may remove members"),
    }
}

/// Change a member's role: the owner (or a site admin). Giving `owner` hands the group
/// over: the previous owner becomes an admin.
pub fn change_role(kind: ChatKind, actor: Actor, target: Role) -> Rule {
    if kind == ChatKind::Direct {
        return deny("direct_chat", "direct chats have no roles");
    }
    if target == Role::Owner {
        return deny(
            "cannot_demote_owner",
            "the owner's role changes only by handing ownership to someone else",
        );
    }
    if actor.role == Some(Role::Owner) || actor.site_admin {
        Ok(())
    } else {
        deny("forbidden", "only the owner may change roles")
    }
}

/// Edit a message: its author only.
pub fn edit_message(actor_id: i64, author_id: Option<i64>) -> Rule {
    if author_id == Some(actor_id) {
        Ok(())
    } else {
        deny("not_the_author", "only the author may edit a message")
    }
}

/// Delete a message: its author, the chat's owner and admins, or a site admin.
pub fn delete_message(actor: Actor, actor_id: i64, author_id: Option<i64>) -> Rule {
    if author_id == Some(actor_id) || is_manager(actor) || actor.site_admin {
        Ok(())
    } else {
        deny(
            "forbidden",
            "only the author, the chat's owner and admins may delete this message",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChatKind::{Direct, Group};

    const OWNER: Actor = Actor {
        role: Some(Role::Owner),
        site_admin: false,
    };
    const ADMIN: Actor = Actor {
        role: Some(Role::Admin),
        site_admin: false,
    };
    const MEMBER: Actor = Actor {
        role: Some(Role::Member),
        site_admin: false,
    };
    const STRANGER: Actor = Actor {
        role: None,
        site_admin: false,
    };
    const SITE_ADMIN: Actor = Actor {
        role: None,
        site_admin: true,
    };

    #[test]
    fn viewing_and_posting() {
        for actor in [OWNER, ADMIN, MEMBER] {
            assert!(view_chat(Group, actor).is_ok() && view_chat(Direct, actor).is_ok());
            assert!(post_in_chat(actor).is_ok());
        }
        assert_eq!(
            view_chat(Group, STRANGER).map_err(|d| d.code),
            Err("not_a_member")
        );
        assert!(view_chat(Group, SITE_ADMIN).is_ok());
        assert!(
            view_chat(Direct, SITE_ADMIN).is_err(),
            "direct chats stay private"
        );
        assert!(
            post_in_chat(SITE_ADMIN).is_err(),
            "moderating is not posting"
        );
    }

    #[test]
    fn group_settings() {
        assert!(
            update_chat(Group, OWNER).is_ok()
                && update_chat(Group, ADMIN).is_ok()
                && update_chat(Group, SITE_ADMIN).is_ok()
        );
        assert!(update_chat(Group, MEMBER).is_err() && update_chat(Direct, OWNER).is_err());
        assert!(delete_chat(Group, OWNER).is_ok() && delete_chat(Group, SITE_ADMIN).is_ok());
        assert!(delete_chat(Group, ADMIN).is_err() && delete_chat(Direct, MEMBER).is_err());
    }

    #[test]
    fn joining_and_leaving() {
        assert!(join_chat(Group, Visibility::Public, STRANGER).is_ok());
        assert_eq!(
            join_chat(Group, Visibility::Private, STRANGER).map_err(|d| d.code),
            Err("private_chat")
        );
        assert_eq!(
            join_chat(Group, Visibility::Public, MEMBER).map_err(|d| d.code),
            Err("already_member")
        );
        assert!(join_chat(Direct, Visibility::Public, STRANGER).is_err());
        assert!(leave_chat(Group, MEMBER).is_ok() && leave_chat(Group, ADMIN).is_ok());
        assert_eq!(
            leave_chat(Group, OWNER).map_err(|d| d.code),
            Err("owner_cannot_leave")
        );
        assert!(leave_chat(Group, STRANGER).is_err() && leave_chat(Direct, MEMBER).is_err());
    }

    #[test]
    fn adding_and_removing_members() {
        assert!(
            add_member(Group, OWNER).is_ok()
                && add_member(Group, ADMIN).is_ok()
                && add_member(Group, SITE_ADMIN).is_ok()
        );
        assert!(add_member(Group, MEMBER).is_err() && add_member(Direct, OWNER).is_err());
        assert!(remove_member(Group, OWNER, Role::Admin).is_ok());
        assert!(remove_member(Group, ADMIN, Role::Member).is_ok());
        assert!(remove_member(Group, ADMIN, Role::Admin).is_err());
        assert_eq!(
            remove_member(Group, ADMIN, Role::Owner).map_err(|d| d.code),
            Err("cannot_remove_owner")
        );
        assert!(remove_member(Group, SITE_ADMIN, Role::Admin).is_ok());
        assert!(remove_member(Group, SITE_ADMIN, Role::Owner).is_err());
        assert!(remove_member(Group, MEMBER, Role::Member).is_err());
    }

    #[test]
    fn roles() {
        assert!(
            change_role(Group, OWNER, Role::Member).is_ok()
                && change_role(Group, SITE_ADMIN, Role::Admin).is_ok()
        );
        assert!(change_role(Group, ADMIN, Role::Member).is_err());
        assert_eq!(
            change_role(Group, OWNER, Role::Owner).map_err(|d| d.code),
            Err("cannot_demote_owner")
        );
    }

    #[test]
    fn messages() {
        assert!(edit_message(1, Some(1)).is_ok());
        assert!(edit_message(1, Some(2)).is_err() && edit_message(1, None).is_err());
        assert!(delete_message(MEMBER, 1, Some(1)).is_ok());
        assert!(delete_message(MEMBER, 1, Some(2)).is_err());
        assert!(
            delete_message(ADMIN, 1, Some(2)).is_ok() && delete_message(OWNER, 1, None).is_ok()
        );
        assert!(delete_message(SITE_ADMIN, 1, Some(2)).is_ok());
    }
}
