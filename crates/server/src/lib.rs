//! The chat server as a library: configuration, telemetry and [`Application`], so
//! the binary and the integration tests start exactly the same server.

mod app;
pub mod config;
pub mod demo;
mod secret;
pub mod telemetry;

pub use app::{Application, Stopper, build_context};
pub use config::{Config, ConfigError, Environment};
