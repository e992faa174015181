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

/// What a client is told about a [`ServiceError`] — the same over HTTP (problem details)
/// and WebSocket (`error` events and refused handshakes). The one place where service
/// errors become statuses and codes.
#[derive(Debug)]
pub struct ClientError {
    /// The HTTP status (a WebSocket `error` event carries only the code).
    pub status: u16,
    /// Machine-readable reason.
    pub code: &'static str,
    /// Human-readable explanation, safe to show.
    pub detail: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
    /// Per-field messages of a validation failure.
    pub fields: Option<FieldErrors>,
}

impl ServiceError {
    /// What the client is told. Causes only operators should see are logged here, once:
    /// an internal error with its whole chain, an unreachable dependency.
    pub fn into_client(self) -> ClientError {
        let plain = |status: u16, code: &'static str, detail: String| ClientError {
            status,
            code,
            detail,
            retry_after: None,
            fields: None,
        };
        match self {
            ServiceError::NotFound(detail) => plain(404, "not_found", detail),
            ServiceError::Unauthorized { code, detail } => plain(401, code, detail),
            ServiceError::Forbidden { code, detail } => plain(403, code, detail),
            ServiceError::Validation(errors) => ClientError {
                detail: errors.to_string(),
                fields: Some(errors),
                ..plain(422, "validation_failed", String::new())
            },
            ServiceError::Conflict { code, detail } => plain(409, code, detail),
            ServiceError::RateLimited { retry_after_secs } => ClientError {
                retry_after: Some(retry_after_secs),
                ..plain(
                    429,
                    "rate_limited",
                    format!("too many requests; retry in {retry_after_secs} s"),
                )
            },
            ServiceError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                ClientError {
                    retry_after: Some(1),
                    ..plain(
                        503,
                        "unavailable",
                        "the service is temporarily unavailable; retry shortly".to_owned(),
                    )
                }
            }
            ServiceError::ShuttingDown => ClientError {
                retry_after: Some(1),
                ..plain(
                    503,
                    "shutting_down",
                    "the server is shutting down; retry (another instance will answer, \
                     resend with the same client_id)"
                        .to_owned(),
                )
            },
            ServiceError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                plain(
                    500,
                    "internal_error",
                    "an internal error occurred".to_owned(),
                )
            }
        }
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
