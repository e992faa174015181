//! Chat headers and memberships: asked on every chat request (is the caller a member?
//! what kind of chat is it?), so they are cached.

use chat_db::DbError;
use chat_db::models::{BlockRow, ChatRow, MembershipRow};
use chat_domain::{ChatKind, Role, Visibility};
use serde::{Deserialize, Serialize};

use crate::cached::{put, read_through, resolve};
use crate::sessions::{LiveSession, resolve_session};
use crate::users::{UserProfile, load_user_profile};
use crate::{Store, keys};

/// The stable part of a chat: what permission checks need. Counters (`last_seq`,
/// `member_count`) are not here; they change with every message and are read fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatHeader {
    /// Id.
    pub id: i64,
    /// Direct or group.
    pub kind: ChatKind,
    /// Public or private.
    pub visibility: Visibility,
    /// Group name.
    pub name: Option<String>,
    /// A direct chat whose members are blocked from messaging each other (one blocks
    /// the other): nobody may post. Absent in entries cached before blocks existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

impl ChatHeader {
    /// The header of a stored chat (rows hold only valid names: the schema checks them),
    /// with no block (see [`direct_header`] for a direct chat's).
    pub fn from_row(row: &ChatRow) -> Self {
        ChatHeader {
            id: row.id,
            kind: ChatKind::parse(&row.kind).unwrap_or(ChatKind::Group),
            visibility: Visibility::parse(&row.visibility).unwrap_or(Visibility::Private),
            name: row.name.clone(),
            blocked: false,
        }
    }
}

/// The two members of a direct chat, from its pair key (`low:high`).
pub fn direct_pair(row: &ChatRow) -> Option<(i64, i64)> {
    let (low, high) = row.direct_key.as_deref()?.split_once(':')?;
    Some((low.parse().ok()?, high.parse().ok()?))
}

/// A stored chat's header, with whether a block stands between the members of a
/// direct chat.
pub async fn direct_header(store: &Store, row: &ChatRow) -> Result<ChatHeader, DbError> {
    let mut header = ChatHeader::from_row(row);
    if header.kind == ChatKind::Direct
        && let Some((a, b)) = direct_pair(row)
    {
        header.blocked = BlockRow::between(&store.db, a, b).await?;
    }
    Ok(header)
}

/// The chat's header, if it exists.
pub async fn chat_header(store: &Store, chat_id: i64) -> Result<Option<ChatHeader>, DbError> {
    read_through(store, &keys::chat(chat_id), async || {
        load_header(store, chat_id).await
    })
    .await
}

async fn load_header(store: &Store, chat_id: i64) -> Result<Option<ChatHeader>, DbError> {
    match ChatRow::find(&store.db, chat_id).await? {
        Some(row) => Ok(Some(direct_header(store, &row).await?)),
        None => Ok(None),
    }
}

/// Records a chat's new header (`None`: deleted).
pub async fn put_chat_header(store: &Store, chat_id: i64, header: Option<&ChatHeader>) {
    put(store, &keys::chat(chat_id), header).await;
}

/// The user's role in the chat, `None` when not a member.
pub async fn membership_role(
    store: &Store,
    chat_id: i64,
    user_id: i64,
) -> Result<Option<Role>, DbError> {
    read_through(store, &keys::membership(chat_id, user_id), async || {
        load_role(store, chat_id, user_id).await
    })
    .await
}

async fn load_role(store: &Store, chat_id: i64, user_id: i64) -> Result<Option<Role>, DbError> {
    Ok(MembershipRow::find(&store.db, chat_id, user_id)
        .await?
        .and_then(|m| Role::parse(&m.role).ok()))
}

/// What a chat request needs to decide, read from the cache in one round trip.
#[derive(Debug, Clone)]
pub struct AccessRead {
    /// The chat's header; `None` if the chat does not exist.
    pub header: Option<ChatHeader>,
    /// The user's role; `None` when not a member (or the chat does not exist).
    pub role: Option<Role>,
    /// The user's profile, when asked for.
    pub profile: Option<UserProfile>,
}

impl AccessRead {
    /// No chat, no role, no profile.
    fn empty() -> Self {
        AccessRead {
            header: None,
            role: None,
            profile: None,
        }
    }
}

/// Whether an access read also fetches the caller's profile (a send needs the sender's
/// username; most reads do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Fetch it, in the same round trip.
    Include,
    /// Do not.
    Skip,
}

/// The chat's header, the user's role in it and, with `with_profile`, the user's
/// profile: one cache round trip (`MGET`) instead of one per entry — this runs on
/// every send and every history page. Misses load from the database and fill.
pub async fn chat_access(
    store: &Store,
    chat_id: i64,
    user_id: i64,
    profile: Profile,
) -> Result<AccessRead, DbError> {
    let with_profile = profile == Profile::Include;
    let keys = AccessKeys::new(chat_id, user_id);
    let mut cached = store
        .cache_get_many(&keys.wanted(with_profile))
        .await
        .into_iter();
    resolve_access(store, chat_id, user_id, with_profile, &mut cached).await
}

/// The caller's session and [`chat_access`], read from the cache in **one** round trip:
/// what an authenticated read of one chat needs (history pages; no profile entry).
/// `user_id` is the token's subject; the access part is resolved (and loaded on a miss)
/// only if the session is live and belongs to that user — otherwise `(None, empty)`.
/// The raw cache values of `extra` keys ride along in the same round trip (in order;
/// `None` for a miss, and for all of them when the session is not live).
pub async fn session_and_chat_access(
    store: &Store,
    session_id: &str,
    user_id: i64,
    chat_id: i64,
    extra: &[&str],
) -> Result<(Option<LiveSession>, AccessRead, Vec<Option<String>>), DbError> {
    let session_key = keys::session(session_id);
    let access_keys = AccessKeys::new(chat_id, user_id);
    let mut wanted = vec![session_key.as_str()];
    wanted.extend(access_keys.wanted(false));
    wanted.extend_from_slice(extra);
    let mut cached = store.cache_get_many(&wanted).await.into_iter();
    let session = resolve_session(store, session_id, cached.next().flatten())
        .await?
        .filter(|s| s.user_id == user_id);
    if session.is_none() {
        return Ok((None, AccessRead::empty(), vec![None; extra.len()]));
    }
    let read = resolve_access(store, chat_id, user_id, false, &mut cached).await?;
    Ok((session, read, cached.collect()))
}

/// The cache keys of [`chat_access`].
struct AccessKeys {
    chat: String,
    member: String,
    user: String,
}

impl AccessKeys {
    fn new(chat_id: i64, user_id: i64) -> Self {
        AccessKeys {
            chat: keys::chat(chat_id),
            member: keys::membership(chat_id, user_id),
            user: keys::user(user_id),
        }
    }

    /// Header, membership and (with `with_profile`) profile, in that order.
    fn wanted(&self, with_profile: bool) -> Vec<&str> {
        let mut wanted = vec![self.chat.as_str(), self.member.as_str()];
        if with_profile {
            wanted.push(self.user.as_str());
        }
        wanted
    }
}

/// Resolves the entries of [`AccessKeys::wanted`], taken from `cached` in order; misses
/// load from the database and fill.
async fn resolve_access(
    store: &Store,
    chat_id: i64,
    user_id: i64,
    with_profile: bool,
    cached: &mut impl Iterator<Item = Option<String>>,
) -> Result<AccessRead, DbError> {
    let keys = AccessKeys::new(chat_id, user_id);
    let (chat_raw, member_raw) = (cached.next().flatten(), cached.next().flatten());
    let user_raw = if with_profile {
        cached.next().flatten()
    } else {
        None
    };
    let header = resolve(store, &keys.chat, chat_raw, async || {
        load_header(store, chat_id).await
    })
    .await?;
    let Some(header) = header else {
        return Ok(AccessRead::empty());
    };
    let role = resolve(store, &keys.member, member_raw, async || {
        load_role(store, chat_id, user_id).await
    })
    .await?;
    let profile = if with_profile {
        resolve(store, &keys.user, user_raw, async || {
            load_user_profile(store, user_id).await
        })
        .await?
    } else {
        None
    };
    Ok(AccessRead {
        header: Some(header),
        role,
        profile,
    })
}

/// Records a membership change (`None`: no longer a member).
pub async fn put_membership(store: &Store, chat_id: i64, user_id: i64, role: Option<Role>) {
    put(store, &keys::membership(chat_id, user_id), role.as_ref()).await;
}
