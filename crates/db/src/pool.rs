//! Connection pools for both backends, and the macros that run one query body on
//! whichever backend is configured.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;

use crate::DbError;

/// A PostgreSQL connection.
pub type PgConn = AsyncPgConnection;
/// A SQLite connection; its calls run on tokio's blocking pool, never on the reactor.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Set on every SQLite connection: WAL lets readers run beside the writer, the busy
/// timeout makes writers queue instead of failing with "database is locked", and
/// SQLite leaves foreign keys off unless asked.
/// The busy timeout comes first: until it is set, a statement that meets a lock
/// (switching to WAL while another connection is open) fails at once.
/// Automatic checkpoints are off: the connection whose commit crossed the threshold
/// would run one inside that commit — the message writer, stalled for the time it takes
/// to copy the WAL into the database and sync it (the tail of the commit times). A
/// background thread checkpoints instead (see [`spawn_checkpointer`]).
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;";

/// Set on each PostgreSQL connection of the message writers. Their statements find rows
/// by key (chats by id, messages by their unique keys), and the batch statement is
/// planned once, generically. With the default `random_page_cost` (4, a spinning disk's
/// seek) that plan scans and hashes all of `chats` whenever the table is small (up to
/// thousands of rows), twice per batch: 0.2–0.3 ms more per batch, most of a small
/// batch's time (docs/benchmarks.md, "The batch statement's plan"). At 1.1, the usual
/// figure for SSDs and cached tables, the plan probes the primary key at every size.
pub const WRITER_SESSION: &str = "SET random_page_cost = 1.1";

/// How often the background thread copies the WAL back into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// When a SQLite commit is on disk (`CHAT_SQLITE_SYNCHRONOUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    /// Every commit is synced before it returns (one fsync per group-commit batch): an
    /// acknowledged message survives a power loss or an OS crash.
    #[default]
    Full,
    /// The WAL is synced at checkpoints only: survives a crash of the process, but an
    /// OS crash or power loss may roll back the last acknowledged commits.
    Normal,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Full => "PRAGMA synchronous = FULL;",
            SqliteSync::Normal => "PRAGMA synchronous = NORMAL;",
        }
    }
}

/// A parsed `CHAT_DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, passed to the driver as is.
    Postgres(String),
    /// `sqlite://path` (relative) or `sqlite:///abs/path`: a file path.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Parses the URL; the error is one line meant for the operator.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path.contains(":memory:") {
                // Every pooled connection would get its own empty in-memory database.
                return Err(
                    "needs a file path (sqlite://data/chat.db); in-memory SQLite is not supported"
                        .to_owned(),
                );
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        Err("must start with sqlite:// or postgres://".to_owned())
    }

    /// The backend's name, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections held at once.
    pub max_size: u32,
    /// How long a request waits for a connection before answering 503.
    pub timeout: Duration,
    /// SQLite only: when a commit is durable.
    pub sqlite_sync: SqliteSync,
}

/// A pool of connections to the configured backend.
#[derive(Clone)]
pub enum DbPool {
    /// PostgreSQL through diesel-async.
    Postgres(Pool<PgConn>),
    /// SQLite through diesel-async's sync wrapper.
    Sqlite(Pool<SqliteConn>),
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

/// What a pool holds and how its callers fare (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now.
    pub connections: u32,
    /// Of which idle.
    pub idle: u32,
    /// Callers asking for a connection right now (waiting, or about to be served).
    pub waiting: u64,
    /// Callers that gave up waiting (answered 503) since start.
    pub timed_out: u64,
    /// Time callers spent waiting for a connection since start.
    pub wait_time: Duration,
}

impl DbPool {
    /// Open and idle connections, waiting callers.
    pub fn stats(&self) -> PoolStats {
        let state = match self {
            DbPool::Postgres(pool) => pool.state(),
            DbPool::Sqlite(pool) => pool.state(),
        };
        let s = state.statistics;
        PoolStats {
            connections: state.connections,
            idle: state.idle_connections,
            waiting: s
                .get_started
                .saturating_sub(s.get_direct + s.get_waited + s.get_timed_out),
            timed_out: s.get_timed_out,
            wait_time: s.get_wait_time,
        }
    }

    /// Builds the pool. Connections are opened lazily, so an unreachable database
    /// shows up as 503 answers and a failing `/readyz`, not as a crash.
    pub async fn connect(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, DbError> {
        Self::connect_with(url, options, None).await
    }

    /// Builds the message writers' pool: as [`DbPool::connect`], and on PostgreSQL each
    /// connection first runs [`WRITER_SESSION`].
    pub async fn connect_writers(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, DbError> {
        Self::connect_with(url, options, Some(WRITER_SESSION)).await
    }

    async fn connect_with(
        url: &DatabaseUrl,
        options: PoolOptions,
        postgres_session: Option<&'static str>,
    ) -> Result<Self, DbError> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let mut config = ManagerConfig::<PgConn>::default();
                config.recycling_method = check_without_round_trip();
                if let Some(session) = postgres_session {
                    config.custom_setup = Box::new(move |url| {
                        let url = url.to_owned();
                        async move {
                            let mut conn = PgConn::establish(&url).await?;
                            conn.batch_execute(session)
                                .await
                                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                            Ok(conn)
                        }
                        .boxed()
                    });
                }
                let manager =
                    AsyncDieselConnectionManager::<PgConn>::new_with_config(url.clone(), config);
                let pool = Pool::builder()
                    .max_size(options.max_size)
                    .connection_timeout(options.timeout)
                    .build_unchecked(manager);
                Ok(DbPool::Postgres(pool))
            }
            DatabaseUrl::Sqlite(path) => {
                ensure_parent_dir(path)?;
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.recycling_method = check_without_round_trip();
                let sync = options.sqlite_sync.pragma();
                // The checkpointer runs while the pool (which owns this setup closure and
                // so the token) exists.
                let alive = Arc::new(());
                spawn_checkpointer(path.clone(), Arc::downgrade(&alive));
                config.custom_setup = Box::new(move |url| {
                    let _pool_alive = &alive;
                    let url = url.to_owned();
                    async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        conn.batch_execute(sync)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path.to_string_lossy(),
                    config,
                );
                let pool = Pool::builder()
                    .max_size(options.max_size)
                    .connection_timeout(options.timeout)
                    .build_unchecked(manager);
                Ok(DbPool::Sqlite(pool))
            }
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            DbPool::Postgres(_) => "postgres",
            DbPool::Sqlite(_) => "sqlite",
        }
    }

    /// Runs `SELECT 1`: the readiness check.
    pub async fn ping(&self) -> Result<(), DbError> {
        crate::with_conn!(self, conn => {
            diesel::sql_query("SELECT 1").execute(conn).await?;
        });
        Ok(())
    }
}

/// The check a pooled connection passes before it is handed out. diesel-async's default
/// runs `SELECT 1` on every checkout — a second round trip (PostgreSQL) or thread
/// hand-off (SQLite) per query. This one costs nothing: a connection whose socket has
/// closed (a restarted PostgreSQL) or whose transaction state is broken is replaced;
/// any other failure surfaces on the query itself, which marks the connection broken.
fn check_without_round_trip<C: PoolableConnection + 'static>() -> RecyclingMethod<C> {
    RecyclingMethod::CustomFunction(Box::new(|conn: &mut C| {
        let broken = conn.is_broken();
        async move {
            if broken {
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection,
                    Box::new("pooled connection is closed".to_owned()),
                ))
            } else {
                Ok(())
            }
        }
        .boxed()
    }))
}

/// Creates the directory of a SQLite file, so the zero-config default just works.
/// Checkpoints a SQLite database's WAL every [`CHECKPOINT_INTERVAL`] on a thread of its
/// own, while `alive` can be upgraded. `PASSIVE`: it copies what no reader still needs
/// and never blocks the writer or readers, which go on beside it; the database file is
/// synced by it (`synchronous = FULL` on its connection) before the WAL may be reused.
fn spawn_checkpointer(path: PathBuf, alive: Weak<()>) {
    use diesel::connection::SimpleConnection;
    let run = move || {
        let mut conn: Option<SqliteConnection> = None;
        // Logged once per run of failures, not every interval.
        let mut failing = false;
        loop {
            std::thread::sleep(CHECKPOINT_INTERVAL);
            if alive.strong_count() == 0 {
                return;
            }
            // Not before the pool created the database (opening would create it).
            if conn.is_none() && path.exists() {
                conn = match open_checkpointer(&path) {
                    Ok(open) => Some(open),
                    Err(err) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %err, "cannot open the checkpointer's connection");
                        }
                        None
                    }
                };
            }
            let Some(open) = conn.as_mut() else { continue };
            match open.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                Ok(()) => failing = false,
                Err(err) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %err, "WAL checkpoint failed");
                    }
                    conn = None;
                }
            }
        }
    };
    if let Err(err) = std::thread::Builder::new()
        .name("sqlite-checkpoint".to_owned())
        .spawn(run)
    {
        tracing::error!(error = %err, "cannot start the WAL checkpointer");
    }
}

fn open_checkpointer(path: &std::path::Path) -> Result<SqliteConnection, String> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut conn =
        SqliteConnection::establish(&path.to_string_lossy()).map_err(|e| e.to_string())?;
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;")
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn ensure_parent_dir(path: &std::path::Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend the
/// pool holds. The body is compiled once per backend, so each query is written once
/// and type-checked for both. `?` inside converts into the caller's error type.
#[macro_export]
macro_rules! with_conn {
    ($pool:expr, $conn:ident => $body:expr) => {{
        match $pool {
            $crate::DbPool::Postgres(pool) => {
                let mut guard = pool.get().await.map_err($crate::DbError::pool)?;
                let $conn: &mut $crate::PgConn = &mut *guard;
                $body
            }
            $crate::DbPool::Sqlite(pool) => {
                let mut guard = pool.get().await.map_err($crate::DbError::pool)?;
                let $conn: &mut $crate::SqliteConn = &mut *guard;
                $body
            }
        }
    }};
}

/// Like [`with_conn!`], inside a transaction: `$body` must evaluate to a
/// `Result<_, E>` with `E: From<diesel::result::Error>`; `Err` rolls back. On SQLite the
/// transaction is `BEGIN IMMEDIATE`, which takes the write lock up front: a deferred
/// transaction that later upgrades to a writer fails with SQLITE_BUSY instead of waiting.
#[macro_export]
macro_rules! with_tx {
    ($pool:expr, $conn:ident => $body:expr) => {{
        match $pool {
            $crate::DbPool::Postgres(pool) => {
                let mut guard = pool.get().await.map_err($crate::DbError::pool)?;
                let conn: &mut $crate::PgConn = &mut *guard;
                diesel_async::AsyncConnection::transaction(
                    conn,
                    async |$conn: &mut $crate::PgConn| $body,
                )
                .await
            }
            $crate::DbPool::Sqlite(pool) => {
                let mut guard = pool.get().await.map_err($crate::DbError::pool)?;
                let conn: &mut $crate::SqliteConn = &mut *guard;
                conn.immediate_transaction(async |$conn: &mut $crate::SqliteConn| $body)
                    .await
            }
        }
    }};
}

/// Loads every row of `$query` on whichever backend the pool holds. On SQLite the
/// query runs and its rows are decoded in **one** blocking-pool hand-off, with the
/// synchronous diesel API: diesel-async's wrapper would copy each row into owned
/// `sqlite3_value`s there and decode them on the reactor thread, so every value is
/// allocated on one thread and freed on another. `$query` is written once and typed
/// per backend (it may end in `into_boxed()`); it must own its data (`'static`).
#[macro_export]
macro_rules! load_rows {
    ($pool:expr, $query:expr) => {{
        match $pool {
            $crate::DbPool::Postgres(pool) => {
                let mut guard = pool.get().await.map_err($crate::DbError::pool)?;
                let conn: &mut $crate::PgConn = &mut *guard;
                diesel_async::RunQueryDsl::load($query, conn).await?
            }
            $crate::DbPool::Sqlite(pool) => {
                let mut guard = pool.get().await.map_err($crate::DbError::pool)?;
                let query = $query;
                guard
                    .spawn_blocking(move |conn: &mut diesel::SqliteConnection| {
                        diesel::RunQueryDsl::load(query, conn)
                    })
                    .await?
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/chat.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("data/chat.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("/tmp/x.db")))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }
}
