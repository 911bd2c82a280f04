//! A small stderr logger for the `log` facade; the level comes from `XENPLUG_LOG`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::Instant;

/// Environment variable naming the log level (error, warn, info, debug, trace).
pub const LOG_ENV: &str = "XENPLUG_LOG";

struct StderrLogger {
    started: Instant,
    role: &'static str,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let elapsed = self.started.elapsed();
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        // Formatted first and written at once: stderr is unbuffered, and a line written in
        // pieces costs a syscall per piece and can interleave with another thread's.
        let line = format!(
            "{:>4}.{:03} xenplug {} {level}: {}\n",
            elapsed.as_secs(),
            elapsed.subsec_millis(),
            self.role,
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger for `role`; the level is `XENPLUG_LOG` or info.
pub fn init(role: &'static str) {
    let level = std::env::var(LOG_ENV)
        .ok()
        .and_then(|text| text.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    let logger = Box::leak(Box::new(StderrLogger {
        started: Instant::now(),
        role,
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
