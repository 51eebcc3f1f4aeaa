//! Structured logs with tracing. `RUST_LOG` filters; `IMI_LOG_FORMAT=json`
//! switches to JSON lines for log shippers.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once (later calls are no-ops).
pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pinky_swear=off"));
    let json = std::env::var("IMI_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
