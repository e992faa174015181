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
