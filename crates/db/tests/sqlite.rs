//! SQLite connections are opened with the configured durability.

use std::time::Duration;

use chat_db::{DatabaseUrl, DbPool, PoolOptions, SqliteSync};
use diesel::QueryableByName;
use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Synchronous {
    #[diesel(sql_type = Integer)]
    synchronous: i32,
}

async fn synchronous_of(sync: SqliteSync) -> anyhow::Result<i32> {
    let dir = std::env::temp_dir().join(format!("chat-sync-{:016x}", rand::random::<u64>()));
    let url = DatabaseUrl::parse(&format!("sqlite://{}/chat.db", dir.display()))
        .map_err(anyhow::Error::msg)?;
    let pool = DbPool::connect(
        &url,
        PoolOptions {
            max_size: 1,
            timeout: Duration::from_secs(5),
            sqlite_sync: sync,
        },
    )
    .await?;
    let DbPool::Sqlite(pool) = pool else {
        anyhow::bail!("a sqlite:// URL made another pool");
    };
    let mut conn = pool.get().await?;
    let row: Synchronous = diesel::sql_query("PRAGMA synchronous")
        .get_result(&mut *conn)
        .await?;
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(row.synchronous)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_synced_unless_configured_otherwise() -> anyhow::Result<()> {
    // SQLite's codes: 1 = NORMAL, 2 = FULL.
    assert_eq!(synchronous_of(SqliteSync::default()).await?, 2);
    assert_eq!(synchronous_of(SqliteSync::Normal).await?, 1);
    Ok(())
}

#[derive(QueryableByName)]
struct AutoCheckpoint {
    #[diesel(sql_type = Integer)]
    wal_autocheckpoint: i32,
}

/// Commits never run a checkpoint themselves (a writer stalled inside its commit): the
/// pool's connections have automatic checkpoints off, and a background thread copies
/// the WAL into the database file instead — seen here as the file growing while the
/// test itself never checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_in_the_background() -> anyhow::Result<()> {
    use diesel_async::SimpleAsyncConnection;

    let dir = std::env::temp_dir().join(format!("chat-ckpt-{:016x}", rand::random::<u64>()));
    let file = dir.join("chat.db");
    let url =
        DatabaseUrl::parse(&format!("sqlite://{}", file.display())).map_err(anyhow::Error::msg)?;
    let pool = DbPool::connect(
        &url,
        PoolOptions {
            max_size: 2,
            timeout: Duration::from_secs(5),
            sqlite_sync: SqliteSync::Full,
        },
    )
    .await?;
    let DbPool::Sqlite(pool) = pool else {
        anyhow::bail!("a sqlite:// URL made another pool");
    };
    let mut conn = pool.get().await?;
    let auto: AutoCheckpoint = diesel::sql_query("PRAGMA wal_autocheckpoint")
        .get_result(&mut *conn)
        .await?;
    assert_eq!(auto.wal_autocheckpoint, 0, "commits must not checkpoint");
    // About 2 MiB in the WAL: below SQLite's default threshold (1 000 pages, ~4 MiB),
    // so only the background thread can have moved it into the file.
    conn.batch_execute(
        "CREATE TABLE filler (body BLOB); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 512) \
         INSERT INTO filler SELECT randomblob(4096) FROM n;",
    )
    .await?;
    drop(conn);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut size = 0;
    while std::time::Instant::now() < deadline {
        size = std::fs::metadata(&file)?.len();
        if size > 2_000_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        size > 2_000_000,
        "the database file is {size} bytes: no checkpoint ran"
    );
    Ok(())
}
