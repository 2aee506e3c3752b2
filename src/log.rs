//! Library logging: off by default (gran prints nothing unless asked). One process-wide sink
//! with a minimum level, set by the embedding application.

use once_cell::sync::Lazy;
use parking_lot::RwLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

pub(crate) type Sink = std::sync::Arc<dyn Fn(Level, &str) + Send + Sync>;

static SINK: Lazy<RwLock<Option<(Sink, Level)>>> = Lazy::new(|| RwLock::new(None));

/// Installs (or with `None` removes) the sink that receives messages at `min_level` and above.
pub fn set_sink(sink: Option<Sink>, min_level: Level) {
    *SINK.write() = sink.map(|s| (s, min_level));
}

/// Sends a message to the sink, if one is installed and the level is high enough.
pub(crate) fn log(level: Level, message: &str) {
    // The sink runs outside the lock, so it may itself call back into the library.
    let sink = match SINK.read().as_ref() {
        Some((sink, min)) if level >= *min => sink.clone(),
        _ => return,
    };
    sink(level, message);
}
