//! Profiles: my own account, and the directory of other users.

mod directory;
mod profile;
mod views;

pub use directory::{get_user, search_users};
pub use profile::{UpdateMeInput, get_me, update_me};
pub(crate) use views::utc;
pub use views::{PublicUser, UserView};
