//! The one error type of the service layer, by kind.

use chat_db::DbError;
use chat_domain::FieldErrors;

/// What went wrong, sorted by how a client should react.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The thing does not exist (or the caller may not know it does).
    #[error("{0}")]
    NotFound(String),
    /// Missing, invalid, expired or revoked credentials.
    #[error("{detail}")]
    Unauthorized {
        /// Machine-readable reason (`invalid_token`, `token_expired`, …).
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// Authenticated, but not allowed.
    #[error("{detail}")]
    Forbidden {
        /// Machine-readable reason.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// Input failed validation; every field's messages.
    #[error("validation failed: {0}")]
    Validation(FieldErrors),
    /// The write clashes with existing state (taken username, duplicate, …).
    #[error("{detail}")]
    Conflict {
        /// Machine-readable reason.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// Too many requests; retry after this many seconds.
    #[error("rate limit exceeded")]
    RateLimited {
        /// Seconds until a request would be allowed.
        retry_after_secs: u64,
    },
    /// A dependency (the database) is unreachable; retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The process is stopping: the work was not done; retry (another instance, or
    /// this one after its restart, will take it).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A bug or broken invariant; logged with its cause, never shown to clients.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// A 401 with the given code.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        ServiceError::Unauthorized {
            code,
            detail: detail.into(),
        }
    }

    /// A 403 with the given code.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    /// A 422 about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.add(field, message);
        ServiceError::Validation(errors)
    }
}

impl From<DbError> for ServiceError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(detail) => ServiceError::Unavailable(detail),
            DbError::InvalidInput(_) => {
                ServiceError::invalid("body", "contains characters that cannot be stored")
            }
            DbError::Conflict { constraint } => {
                // Callers map the clashes they expect to precise codes; an unexpected one
                // is logged with its constraint, which clients need not see.
                tracing::warn!(constraint, "unmapped unique-constraint clash");
                ServiceError::Conflict {
                    code: "conflict",
                    detail: "this conflicts with existing data".to_owned(),
                }
            }
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<FieldErrors> for ServiceError {
    fn from(errors: FieldErrors) -> Self {
        ServiceError::Validation(errors)
    }
}
