//! Reads ("give me X"), with cache-aside in front of the database.
//!
//! Each selector names its cache key and TTL next to it and has an `invalidate_*` twin
//! that `services` calls after every write that changes what it caches. A cache
//! failure is logged and falls through to the database: it never fails a request.

mod cached;
pub mod chats;
pub mod keys;
pub mod sessions;
mod store;
pub mod users;

pub use cached::ENTITY_TTL;
pub use store::Store;
