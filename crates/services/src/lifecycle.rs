//! Whether this process is serving or draining towards a stop.
//!
//! A stop (SIGTERM, SIGINT) first flips the process to draining: readiness answers 503
//! so a proxy stops sending it work, and a send that arrives from then on is refused
//! with `shutting_down` — never acknowledged and then lost when the process exits.
//! Sends already accepted are committed by the writers before the process exits.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{ServiceError, ServiceResult};

/// The serving state of the process.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    /// Starts draining; `true` the first time only.
    pub fn begin_drain(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// A stop has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// `ShuttingDown` once a stop has begun: for work that would outlive the process.
    pub fn accepting(&self) -> ServiceResult<()> {
        if self.is_draining() {
            Err(ServiceError::ShuttingDown)
        } else {
            Ok(())
        }
    }
}

/// What readiness reports: each dependency's state and whether the process drains.
#[derive(Debug)]
pub struct Readiness {
    /// The database answered (or what failed).
    pub database: Result<(), String>,
    /// The cache answered: always for the in-process one, Redis when configured.
    pub cache: Result<(), String>,
    /// A stop has begun.
    pub draining: bool,
}

impl Readiness {
    /// Ready to take work.
    pub fn ready(&self) -> bool {
        self.database.is_ok() && self.cache.is_ok() && !self.draining
    }
}

/// Asks the database and the cache at once; the stop state is read after them, so a stop
/// that began meanwhile is not reported ready.
pub async fn readiness(ctx: &crate::AppContext) -> Readiness {
    let (database, cache) = tokio::join!(ctx.store.db.ping(), ctx.store.cache.ping());
    Readiness {
        database: database.map_err(|e| e.to_string()),
        cache: cache.map_err(|e| e.to_string()),
        draining: ctx.lifecycle.is_draining(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_is_one_way_and_refuses_work() {
        let life = Lifecycle::default();
        assert!(life.accepting().is_ok());
        assert!(life.begin_drain());
        assert!(!life.begin_drain());
        assert!(life.is_draining());
        assert!(matches!(life.accepting(), Err(ServiceError::ShuttingDown)));
    }
}
