//! Storage and messaging adapters.
//!
//! * [`DbPool`]: PostgreSQL (diesel-async + bb8) or SQLite (diesel-async's
//!   `SyncConnectionWrapper`, so SQLite calls run on the blocking pool), chosen at run time.
//!   Every query is written once and type-checked for both backends through
//!   [`with_conn!`] / [`with_tx!`].
//! * [`cache`]: a key/value cache with TTLs, Redis or in-process.
//! * [`bus`]: the event bus that carries domain events to WebSocket fan-out, Redis
//!   pub/sub or in-process.
//! * [`presence`]: socket counters per user over every instance, reclaimed from
//!   instances that die.

mod backup;
pub mod bus;
pub mod cache;
mod error;
pub mod files;
mod migrate;
pub mod models;
mod pool;
pub mod presence;
pub mod redis;
pub mod schema;
mod time;

pub use backup::backup_sqlite;
pub use error::DbError;
pub use migrate::run_migrations;
pub use pool::{DatabaseUrl, DbPool, PgConn, PoolOptions, PoolStats, SqliteConn, SqliteSync};
pub use time::StoredTime;

/// The current time as stored in the database: UTC, microsecond precision (what
/// PostgreSQL keeps), so values round-trip identically on both backends.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}
