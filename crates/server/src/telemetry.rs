//! Logging: human-readable lines in dev and test, JSON lines in prod. Request spans
//! carry a request id (tracing-actix-web); secrets and message bodies are never logged.

use tracing_subscriber::EnvFilter;

use crate::{Config, Environment};

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if config.env == Environment::Prod {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
