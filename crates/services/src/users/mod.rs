//! Profiles: my own account, and the directory of other users.

mod blocks;
mod directory;
mod profile;
mod views;

pub use blocks::{
    BlockState, BlockedUser, MAX_BLOCKS_LISTED, block_user, list_blocks, unblock_user,
};
pub(crate) use blocks::{blocks, ensure_reachable, unreachable};
pub use directory::{get_user, search_users};
pub use profile::{UpdateMeInput, get_me, update_me};
pub(crate) use views::utc;
pub use views::{PublicUser, UserView};
