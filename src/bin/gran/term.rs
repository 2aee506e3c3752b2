//! The terminal's stderr: one progress bar at most, and lines for people printed above it.

use indicatif::ProgressBar;
use parking_lot::Mutex;

/// The bar being drawn, if any: messages are printed above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Prints a line for people on stderr, above the bar when one is drawn.
pub fn println(text: &str) {
    match BAR.lock().as_ref() {
        Some(bar) => bar.println(text),
        None => eprintln!("{text}"),
    }
}

/// Removes the bar (before an error line, so that the line stands alone).
pub fn clear() {
    if let Some(bar) = BAR.lock().take() {
        bar.finish_and_clear();
    }
}

/// Makes `bar` the one drawn: later lines are printed above it.
pub fn show(bar: &ProgressBar) {
    *BAR.lock() = Some(bar.clone());
}

/// Stops printing above the bar (it was left on the terminal as it was).
pub fn forget() {
    BAR.lock().take();
}
