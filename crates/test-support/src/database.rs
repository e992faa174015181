//! A database per test: a temporary SQLite file, or a PostgreSQL database cloned
//! from a migrated template (cloning is ~10× faster than migrating each time).

use std::path::PathBuf;
use std::time::Duration;

use chat_db::DatabaseUrl;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::{Backend, postgres_admin_url, random_suffix, redis_url};

/// Serializes template creation across test processes.
const TEMPLATE_LOCK: i64 = 0x6368_6174_7465_6d70;

/// A database owned by one test, with a directory for its attachments' files; dropped
/// (files deleted / `DROP DATABASE … FORCE`) when the value is.
pub struct TestDatabase {
    url: String,
    kind: Kind,
    files: PathBuf,
}

enum Kind {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Name of the template for the current migrations: a new schema gets a new template.
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    for file in files {
        for byte in std::fs::read(&file).unwrap_or_default() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("chat_test_tpl_{hash:016x}")
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn with_database(admin_url: &str, name: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin_url}/{name}"),
    }
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<()> {
    diesel::sql_query(sql).execute(conn).await?;
    Ok(())
}

/// Runs `sql`, retrying while the source database still has a lingering connection.
async fn exec_retrying(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match exec(conn, sql).await {
            Err(err)
                if attempt < 50 && err.to_string().contains("being accessed by other users") =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn ensure_template(
    admin: &mut AsyncPgConnection,
    admin_url: &str,
    template: &str,
) -> anyhow::Result<()> {
    exec(admin, &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})")).await?;
    let result = async {
        let found: Count =
            diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(template)
                .get_result(admin)
                .await?;
        if found.n == 0 {
            let building = format!("{template}_build");
            exec(
                admin,
                &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
            )
            .await?;
            exec(admin, &format!("CREATE DATABASE \"{building}\"")).await?;
            let url = DatabaseUrl::Postgres(with_database(admin_url, &building));
            tokio::task::spawn_blocking(move || chat_db::run_migrations(&url)).await??;
            exec_retrying(
                admin,
                &format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""),
            )
            .await?;
        }
        anyhow::Ok(())
    }
    .await;
    exec(
        admin,
        &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"),
    )
    .await?;
    result
}

impl TestDatabase {
    /// A fresh, migrated database for `backend`.
    pub async fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("chat-test-{}", random_suffix()));
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}", dir.join("chat.db").display());
                Ok(TestDatabase {
                    url,
                    files: dir.join("attachments"),
                    kind: Kind::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let mut admin = AsyncPgConnection::establish(&admin_url)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {admin_url} (set CHAT_TEST_POSTGRES_URL): {e}"))?;
                let template = template_name();
                ensure_template(&mut admin, &admin_url, &template).await?;
                let name = format!("chat_test_{}", random_suffix());
                exec_retrying(
                    &mut admin,
                    &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
                )
                .await?;
                Ok(TestDatabase {
                    url: with_database(&admin_url, &name),
                    files: std::env::temp_dir().join(format!("{name}-files")),
                    kind: Kind::Postgres(name),
                })
            }
        }
    }

    /// The `CHAT_DATABASE_URL` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `CHAT_ATTACHMENTS_DIR` of servers on this database (created by the server).
    pub fn files_dir(&self) -> &str {
        self.files.to_str().unwrap_or_default()
    }

    /// Drops the PostgreSQL database now, cutting the server's connections (to
    /// test how it answers while its database is gone). No-op on SQLite.
    pub async fn drop_now(&self) -> anyhow::Result<()> {
        if let Kind::Postgres(name) = &self.kind {
            let mut admin = AsyncPgConnection::establish(&postgres_admin_url()).await?;
            exec(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            )
            .await?;
        }
        Ok(())
    }
}

impl TestDatabase {
    /// Ends every PostgreSQL session connected to this database (what a database
    /// restart or failover does to a pool) and returns how many it ended. The database
    /// stays. 0 on SQLite.
    pub async fn terminate_connections(&self) -> anyhow::Result<i64> {
        #[derive(QueryableByName)]
        struct Ended {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let Kind::Postgres(name) = &self.kind else {
            return Ok(0);
        };
        let mut admin = AsyncPgConnection::establish(&postgres_admin_url()).await?;
        let ended: Ended = diesel::sql_query(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<Text, _>(name)
        .get_result(&mut admin)
        .await?;
        Ok(ended.n)
    }
}

impl TestDatabase {
    /// Holds the database's write lock until the returned guard is dropped: SQLite's
    /// `BEGIN IMMEDIATE` on a connection of its own, or PostgreSQL's `LOCK TABLE users
    /// IN EXCLUSIVE MODE` (reads go on, writes to `users` wait). Writers of the server
    /// meanwhile wait inside the database call — what a slow query looks like.
    pub async fn hold_write_lock(&self) -> anyhow::Result<WriteLock> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let target = match &self.kind {
            Kind::Sqlite(_) => {
                LockTarget::Sqlite(self.url.trim_start_matches("sqlite://").to_owned())
            }
            Kind::Postgres(_) => LockTarget::Postgres(self.url.clone()),
        };
        let thread = std::thread::spawn(move || hold(target, ready_tx, release_rx));
        ready.await??;
        Ok(WriteLock {
            release: Some(release),
            thread: Some(thread),
        })
    }
}

enum LockTarget {
    Sqlite(String),
    Postgres(String),
}

/// The lock holder's thread: takes the lock, says so, waits to be told to let go.
fn hold(
    target: LockTarget,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
    release: std::sync::mpsc::Receiver<()>,
) {
    use diesel::connection::SimpleConnection;
    match target {
        LockTarget::Sqlite(path) => {
            let locked = diesel::Connection::establish(&path)
                .map_err(anyhow::Error::from)
                .and_then(|mut conn: diesel::SqliteConnection| {
                    conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE")?;
                    Ok(conn)
                });
            match locked {
                Ok(mut conn) => {
                    let _ = ready.send(Ok(()));
                    let _ = release.recv();
                    let _ = conn.batch_execute("ROLLBACK");
                }
                Err(err) => {
                    let _ = ready.send(Err(err));
                }
            }
        }
        LockTarget::Postgres(url) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(err.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let locked = async {
                    let mut conn = AsyncPgConnection::establish(&url).await?;
                    exec(&mut conn, "BEGIN").await?;
                    exec(&mut conn, "LOCK TABLE users IN EXCLUSIVE MODE").await?;
                    anyhow::Ok(conn)
                }
                .await;
                match locked {
                    Ok(mut conn) => {
                        let _ = ready.send(Ok(()));
                        // The receiver blocks; this thread runs nothing else.
                        let _ = release.recv();
                        let _ = exec(&mut conn, "ROLLBACK").await;
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                    }
                }
            });
        }
    }
}

/// A held write lock (see [`TestDatabase::hold_write_lock`]); dropping it lets go.
pub struct WriteLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.files);
        match &self.kind {
            Kind::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Kind::Postgres(name) => {
                // Drop cannot await; a short-lived thread with its own runtime can.
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let mut admin = AsyncPgConnection::establish(&postgres_admin_url()).await?;
                        exec(
                            &mut admin,
                            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        )
                        .await
                    })
                })
                .join();
            }
        }
    }
}

/// A test server's Redis key prefix: its keys are deleted when the last app using it
/// is dropped — also when a test fails before its `shutdown`.
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    /// Keys under `prefix:`.
    pub fn new(prefix: impl Into<String>) -> Self {
        RedisKeys {
            prefix: prefix.into(),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        // Drop cannot await; a short-lived thread with its own runtime can.
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(delete_redis_prefix(&prefix))
        })
        .join();
    }
}

/// How many Redis keys are under `prefix:`.
pub async fn count_redis_keys(prefix: &str) -> anyhow::Result<usize> {
    Ok(redis_keys(prefix).await?.1.len())
}

/// A connection and every Redis key under `prefix:`.
async fn redis_keys(
    prefix: &str,
) -> anyhow::Result<(redis::aio::MultiplexedConnection, Vec<String>)> {
    let client = redis::Client::open(redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    Ok((conn, keys))
}

/// Deletes every Redis key under `prefix:`.
pub async fn delete_redis_prefix(prefix: &str) -> anyhow::Result<()> {
    let (mut conn, keys) = redis_keys(prefix).await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}
