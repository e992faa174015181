//! Row types and the queries that belong to them (`UserRow::find`, …).

mod sessions;
mod users;

pub use sessions::{NewSession, SessionRow};
pub use users::{NewUser, UserChanges, UserRow};
