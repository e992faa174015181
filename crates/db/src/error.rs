//! The storage error, sorted into the kinds callers act on.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A storage failure, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached (pool timeout, refused or dropped connection):
    /// the request may succeed later (HTTP 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write. `constraint` names it (PostgreSQL: the
    /// index name; SQLite: `table.column`), so callers can tell which field clashed.
    #[error("unique constraint violated: {constraint}")]
    Conflict {
        /// The constraint (or column) that clashed.
        constraint: String,
    },
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Any other query failure: a bug or a broken invariant (HTTP 500).
    #[error(transparent)]
    Query(DieselError),
}

impl DbError {
    /// Wraps a pool error: checking out a connection only fails when the database
    /// is unreachable or saturated.
    pub fn pool(err: impl std::fmt::Display) -> Self {
        DbError::Unavailable(err.to_string())
    }

    /// True when this is a unique-constraint clash whose name mentions `needle`.
    pub fn is_conflict_on(&self, needle: &str) -> bool {
        matches!(self, DbError::Conflict { constraint } if constraint.contains(needle))
    }
}

impl From<DieselError> for DbError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                let constraint = info
                    .constraint_name()
                    .map(str::to_owned)
                    // SQLite reports no constraint name, only "UNIQUE constraint failed: t.c".
                    .unwrap_or_else(|| {
                        info.message()
                            .rsplit(": ")
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    });
                DbError::Conflict { constraint }
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            DieselError::BrokenTransactionManager => {
                DbError::Unavailable("broken transaction manager".to_owned())
            }
            other => DbError::Query(other),
        }
    }
}
