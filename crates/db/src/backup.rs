//! Online backup of the embedded mode's SQLite database.

use std::path::Path;

use diesel::Connection;

use crate::{DatabaseUrl, DbError};

/// Writes a consistent copy of the SQLite database to `target` while the server keeps
/// serving (`VACUUM INTO`: one read transaction, so the copy is a snapshot of committed
/// data; writers are not blocked in WAL mode). `target` must not exist. PostgreSQL is
/// backed up with its own tools (`pg_dump`). Blocking: call it off the reactor.
pub fn backup_sqlite(url: &DatabaseUrl, target: &Path) -> Result<(), DbError> {
    let DatabaseUrl::Sqlite(path) = url else {
        return Err(DbError::Unavailable(
            "backup copies the embedded SQLite database; back PostgreSQL up with pg_dump"
                .to_owned(),
        ));
    };
    if target.exists() {
        return Err(DbError::Unavailable(format!(
            "{} exists already; choose a new file",
            target.display()
        )));
    }
    if !path.exists() {
        return Err(DbError::Unavailable(format!(
            "no database at {}",
            path.display()
        )));
    }
    let target = target
        .to_str()
        .ok_or_else(|| DbError::Unavailable("the backup path must be valid UTF-8".to_owned()))?;
    let mut conn =
        diesel::SqliteConnection::establish(&path.to_string_lossy()).map_err(DbError::pool)?;
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!(
            "PRAGMA busy_timeout = 5000; VACUUM INTO '{}';",
            target.replace('\'', "''")
        ),
    )?;
    Ok(())
}
