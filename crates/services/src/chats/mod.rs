//! Chats: groups and direct chats, the chat list, membership management.

mod access;
mod direct;
mod groups;
mod list;
mod live;
mod members;
mod views;

pub(crate) use access::{ChatAccess, access, access_with, authenticated_access, denied};
pub use direct::open_direct;
pub use groups::{
    CreateGroupInput, MuteState, UpdateChatInput, create_group, delete_chat, discover_groups,
    get_chat, join_chat, leave_chat, set_muted, update_chat,
};
pub use list::list_chats;
pub use live::{ChatPosition, authorize_socket, my_chat_positions, typing};
pub use members::{add_member, change_role, list_members, remove_member};
pub use views::{
    ChatView, GroupListing, MEMBER_PREVIEW_MAX, MemberView, MessageView, attachments_of,
};
