//! Atomic file writes: a temporary file beside the target, flushed to disk, renamed over it.
//! A reader sees the old file or the new one, never a mix; a crash, a kill or a full disk during
//! a write leaves the old file as it was.
//!
//! Temporary files are named `.<target name>.<pid>.<n>.tmp`. A writer killed mid-write leaves
//! its temporary file behind; the next write to the same target removes those whose process
//! no longer exists (so they never accumulate), and never one of a live process.

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically: temporary file beside it, fsync, rename, fsync the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::invalid(format!("{}: not a file path", path.display())))?;
    let name = name.to_string_lossy();
    remove_stale_temporaries(&dir, &name);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}

/// The process id in a temporary file name of target `name`, if `file` is one.
fn temporary_of(file: &str, name: &str) -> Option<i32> {
    let rest = file.strip_prefix('.')?.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` exists (a process of another user counts as existing).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}

/// Removes the temporary files of target `name` in `dir` whose writing process is gone.
/// Best effort: a folder that cannot be listed, or a file that cannot be removed, is left.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let me = std::process::id() as i32;
    for entry in entries.flatten() {
        let file = entry.file_name();
        if let Some(pid) = file.to_str().and_then(|f| temporary_of(f, name)) {
            if pid != me && !alive(pid) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised_for_their_target_only() {
        assert_eq!(temporary_of(".m.safetensors.123.4.tmp", "m.safetensors"), Some(123));
        assert_eq!(temporary_of(".m.safetensors.123.4.tmp", "m"), None);
        assert_eq!(temporary_of(".other.123.4.tmp", "m.safetensors"), None);
        assert_eq!(temporary_of(".m.safetensors.x.4.tmp", "m.safetensors"), None);
        assert_eq!(temporary_of("m.safetensors", "m.safetensors"), None);
    }

    #[test]
    fn a_write_removes_temporaries_of_dead_writers_and_keeps_live_ones() {
        let dir = std::env::temp_dir().join(format!("gran-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // A process that has exited: its pid is free (until reused, which a test cannot rule
        // out, but which is rare within a few milliseconds).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(format!(".t.bin.{dead}.0.tmp"));
        let live = dir.join(format!(".t.bin.{}.99.tmp", std::process::id()));
        let parent = dir.join(format!(".t.bin.{}.0.tmp", unsafe { libc::getppid() }));
        let other = dir.join(format!(".u.bin.{dead}.0.tmp"));
        for f in [&stale, &live, &parent, &other] {
            fs::write(f, b"partial").unwrap();
        }
        write_atomic(&dir.join("t.bin"), b"whole").unwrap();
        assert_eq!(fs::read(dir.join("t.bin")).unwrap(), b"whole");
        assert!(!stale.exists(), "the dead writer's temporary file is removed");
        assert!(live.exists() && parent.exists(), "live writers' files stay");
        assert!(other.exists(), "another target's files stay");
        fs::remove_dir_all(&dir).unwrap();
    }
}
