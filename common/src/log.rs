//! Library logging: off by default (nothing is printed unless asked). One process-wide sink
//! with a minimum level, set by the embedding application, from Rust or through the C callback
//! of `gran_set_log_callback`.

use crate::abi::{GranLogCallback, GranLogLevel, GRAN_LOG_DEBUG, GRAN_LOG_ERROR, GRAN_LOG_INFO, GRAN_LOG_WARN};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

static SINK: RwLock<Option<(Sink, Level)>> = RwLock::new(None);

/// Installs (or with `None` removes) the sink that receives messages at `min_level` and above.
pub fn set_sink(sink: Option<Sink>, min_level: Level) {
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink.map(|s| (s, min_level));
}

/// Sends a message to the sink, if one is installed and the level is high enough.
pub fn log(level: Level, message: &str) {
    // The sink runs outside the lock, so it may itself call back into the library.
    let sink = match SINK.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some((sink, min)) if level >= *min => sink.clone(),
        _ => return,
    };
    sink(level, message);
}

struct CLogSink {
    cb: unsafe extern "C" fn(GranLogLevel, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the application that installs the callback promises (see gran_set_log_callback) that
// it may be called from any thread with this user_data.
unsafe impl Send for CLogSink {}
unsafe impl Sync for CLogSink {}

impl CLogSink {
    fn call(&self, level: Level, msg: &str) {
        let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
        let lvl = match level {
            Level::Debug => GRAN_LOG_DEBUG,
            Level::Info => GRAN_LOG_INFO,
            Level::Warn => GRAN_LOG_WARN,
            Level::Error => GRAN_LOG_ERROR,
        };
        // SAFETY: cb and user_data come from the application, which guarantees them.
        unsafe { (self.cb)(lvl, text.as_ptr(), self.user_data) }
    }
}

/// What `gran_set_log_callback` does: `cb` (NULL: none) receives messages at `min_level` and
/// above (a level above GRAN_LOG_ERROR counts as GRAN_LOG_ERROR).
pub fn set_c_callback(cb: GranLogCallback, user_data: *mut c_void, min_level: GranLogLevel) {
    let level = match min_level {
        GRAN_LOG_DEBUG => Level::Debug,
        GRAN_LOG_INFO => Level::Info,
        GRAN_LOG_WARN => Level::Warn,
        _ => Level::Error,
    };
    let sink = cb.map(|cb| {
        let s = CLogSink { cb, user_data };
        Arc::new(move |level: Level, msg: &str| s.call(level, msg)) as Sink
    });
    set_sink(sink, level);
}
