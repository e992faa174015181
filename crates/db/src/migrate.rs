//! Embedded migrations for both backends.

use diesel::Connection;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{DatabaseUrl, DbError, PgConn};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Serializes concurrent `migrate` runs (several instances starting at once, parallel
/// test set-up) on one PostgreSQL server. An arbitrary constant: "chatmigr".
const PG_MIGRATION_LOCK: i64 = 0x6368_6174_6d69_6772;

/// Applies pending migrations and returns the versions applied.
///
/// Blocking: it runs on its own thread (with its own runtime for PostgreSQL, whose
/// migration harness needs `block_in_place`), so call it from `spawn_blocking` or
/// before the server starts.
pub fn run_migrations(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    let url = url.clone();
    std::thread::spawn(move || match url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                .map_err(DbError::pool)?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                crate::pool::SQLITE_PRAGMAS,
            )?;
            apply(&mut conn, SQLITE)
        }
        DatabaseUrl::Postgres(url) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(DbError::pool)?;
            runtime.block_on(async move {
                let handle = tokio::spawn(async move {
                    let mut conn = PgConn::establish(&url).await.map_err(DbError::pool)?;
                    diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                        .execute(&mut conn)
                        .await?;
                    let mut harness = AsyncMigrationHarness::new(conn);
                    let applied = apply(&mut harness, POSTGRES);
                    let mut conn = harness.into_inner();
                    diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                        .execute(&mut conn)
                        .await?;
                    applied
                });
                handle.await.map_err(DbError::pool)?
            })
        }
    })
    .join()
    .map_err(|_| DbError::Unavailable("migration thread panicked".to_owned()))?
}

fn apply<DB: diesel::backend::Backend>(
    harness: &mut impl MigrationHarness<DB>,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, DbError> {
    let applied = harness
        .run_pending_migrations(migrations)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}
