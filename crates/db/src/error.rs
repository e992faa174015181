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
    /// The database refused a value it cannot store (e.g. a NUL byte in PostgreSQL
    /// text). Input validation should catch these first; this is the safety net (422).
    #[error("value cannot be stored: {0}")]
    InvalidInput(String),
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
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => DbError::Unavailable(info.message().to_owned()),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().starts_with("invalid byte sequence") =>
            {
                DbError::InvalidInput(info.message().to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_transient(info.message()) =>
            {
                DbError::Unavailable(info.message().to_owned())
            }
            DieselError::BrokenTransactionManager => {
                DbError::Unavailable("broken transaction manager".to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

/// Messages of failures that say "the database is going away or busy", not "the
/// query is wrong": PostgreSQL terminating the backend (restart, failover,
/// `pg_terminate_backend`, dropped database), or SQLite still locked after the busy
/// timeout. They deserve a 503 and a retry, not a 500.
fn is_transient(message: &str) -> bool {
    message.starts_with("terminating connection")
        || message.contains("the database system is shutting down")
        || message.contains("the database system is starting up")
        || message.starts_with("database is locked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_unavailable() {
        for message in [
            "terminating connection due to administrator command",
            "database is locked",
        ] {
            let err = DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            );
            assert!(
                matches!(DbError::from(err), DbError::Unavailable(_)),
                "{message}"
            );
        }
        let closed = DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        );
        assert!(matches!(DbError::from(closed), DbError::Unavailable(_)));
        let syntax = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("syntax error".to_owned()),
        );
        assert!(matches!(DbError::from(syntax), DbError::Query(_)));
    }

    #[test]
    fn sqlite_unique_violations_name_their_column() {
        let err = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: users.email".to_owned()),
        );
        assert!(DbError::from(err).is_conflict_on("email"));
    }
}
