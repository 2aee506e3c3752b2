//! Atomic file writes: a temporary file beside the target, flushed to disk, renamed over it.
//! A reader sees the old file or the new one, never a mix; a crash, a kill or a full disk during
//! a write leaves the old file as it was.
//!
//! What a path may name: a regular file, or nothing yet (then it is created). A symbolic link
//! is followed and its target written atomically in the target's folder, so the link stays a
//! link (a "latest" link keeps pointing where it did, at the new contents); a link whose target
//! does not exist is an IO failure, not a file created wherever it points. A folder, a FIFO, a
//! device or a socket is an IO failure and the node is left as it was: a rename would replace it
//! with a regular file.
//!
//! Temporary files are named `.<target name>.<pid>.<n>.tmp`. A writer killed mid-write leaves
//! its temporary file behind; the next write to the same target removes those whose process
//! no longer exists (so they never accumulate), and never one of a live process.

use crate::abi::GRAN_STATUS_IO;
use crate::boundary::Failure as Error;

type Result<T> = std::result::Result<T, Error>;

fn io_error(context: String, e: std::io::Error) -> Error {
    Error::new(GRAN_STATUS_IO, format!("{context}: {e}"))
}
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically: temporary file beside it, fsync, rename, fsync the folder
/// (`path` resolved first, see the module documentation).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = writable_target(path)?;
    replace(&target, bytes).map_err(|e| match target == path {
        true => e,
        false => Error::new(e.status, format!("{} (the target of the link {})", e.message, path.display())),
    })
}

/// The file a write to `path` replaces: `path` itself when it is a regular file or names
/// nothing yet, the final target of a symbolic link when that is a regular file; else IO.
fn writable_target(path: &Path) -> Result<PathBuf> {
    let refuse = |what: &str| {
        Err(Error::new(
            GRAN_STATUS_IO,
            format!("{} is {what}, not a regular file: nothing was written", path.display()),
        ))
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(io_error(format!("looking at {}", path.display()), e)),
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        match fs::canonicalize(path) {
            Ok(t) => {
                let m = fs::metadata(&t).map_err(|e| io_error(format!("looking at {}", t.display()), e))?;
                (t, m)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return refuse("a symbolic link to something that does not exist")
            }
            Err(e) => return Err(io_error(format!("following the link {}", path.display()), e)),
        }
    } else {
        (path.to_path_buf(), meta)
    };
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    match () {
        _ if t.is_file() => Ok(target),
        _ if t.is_dir() => refuse("a folder"),
        _ if t.is_fifo() => refuse("a FIFO"),
        _ if t.is_char_device() || t.is_block_device() => refuse("a device"),
        _ if t.is_socket() => refuse("a socket"),
        _ => refuse("not a file"),
    }
}

/// Replaces the regular file (or nothing) at `path` with `bytes`, atomically.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut w = AtomicWriter::beside(path)?;
    w.write_all(bytes).map_err(|e| io_error(format!("writing {}", path.display()), e))?;
    w.commit()
}

/// A file written in parts and put in place atomically: its bytes go to a temporary file beside
/// the target, and [`AtomicWriter::commit`] flushes it to disk and renames it over the target
/// (resolved as [`write_atomic`] resolves it). Dropped without a commit, the temporary file is
/// removed and the target left as it was. For files too large to assemble in memory first.
pub struct AtomicWriter {
    file: std::io::BufWriter<fs::File>,
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl AtomicWriter {
    /// Starts a write that will replace `path`.
    pub fn create(path: &Path) -> Result<AtomicWriter> {
        let target = writable_target(path)?;
        AtomicWriter::beside(&target)
    }

    /// Starts a write replacing `path`, already resolved.
    fn beside(path: &Path) -> Result<AtomicWriter> {
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
        let file = fs::File::create(&tmp).map_err(|e| io_error(format!("writing {}", path.display()), e))?;
        Ok(AtomicWriter {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            tmp,
            target: path.to_path_buf(),
            dir,
            committed: false,
        })
    }

    /// Flushes the bytes written to disk and renames the file over the target.
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        let result = (|| -> std::io::Result<()> {
            self.file.flush()?;
            self.file.get_ref().sync_all()?;
            fs::rename(&self.tmp, &self.target)?;
            // Make the rename itself durable.
            if let Ok(d) = fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(e) => Err(io_error(format!("writing {}", target.display()), e)),
        }
    }
}

impl Write for AtomicWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The process id in a temporary file name of target `name`, if `file` is one.
fn temporary_of(file: &str, name: &str) -> Option<i32> {
    let rest = file.strip_prefix('.')?.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes the temporary files of target `name` in `dir` whose writing process is gone.
/// Best effort: a folder that cannot be listed, or a file that cannot be removed, is left.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let me = std::process::id() as i32;
    for entry in entries.flatten() {
        let file = entry.file_name();
        if let Some(pid) = file.to_str().and_then(|f| temporary_of(f, name)) {
            if pid != me && !process_exists(pid) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Whether process `pid` exists (a process of another user counts as existing).
fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
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

    #[test]
    fn every_kind_of_path_is_written_or_refused_as_documented() {
        use std::os::unix::fs::{symlink, FileTypeExt};
        let dir = std::env::temp_dir().join(format!("gran-paths-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        let kind = |r: Result<()>| r.unwrap_err().status;
        // A new path and a regular file: written.
        write_atomic(&dir.join("new.bin"), b"one").unwrap();
        write_atomic(&dir.join("new.bin"), b"two").unwrap();
        assert_eq!(fs::read(dir.join("new.bin")).unwrap(), b"two");
        // A link (relative, to a file in another folder): the target is written, the link stays.
        fs::write(dir.join("sub/model.bin"), b"old").unwrap();
        symlink("sub/model.bin", dir.join("latest")).unwrap();
        write_atomic(&dir.join("latest"), b"new").unwrap();
        assert!(fs::symlink_metadata(dir.join("latest")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(dir.join("latest")).unwrap(), Path::new("sub/model.bin"));
        assert_eq!(fs::read(dir.join("sub/model.bin")).unwrap(), b"new");
        // A link to a link to a file: the final target.
        symlink("latest", dir.join("chain")).unwrap();
        write_atomic(&dir.join("chain"), b"newer").unwrap();
        assert_eq!(fs::read(dir.join("sub/model.bin")).unwrap(), b"newer");
        assert!(fs::symlink_metadata(dir.join("chain")).unwrap().file_type().is_symlink());
        // A dangling link: Io, nothing created where it points.
        symlink("sub/missing.bin", dir.join("dangling")).unwrap();
        assert_eq!(kind(write_atomic(&dir.join("dangling"), b"x")), GRAN_STATUS_IO);
        assert!(!dir.join("sub/missing.bin").exists());
        // A folder, a FIFO, a socket, a device and a link to a device: Io, each left as it was.
        assert_eq!(kind(write_atomic(&dir.join("sub"), b"x")), GRAN_STATUS_IO);
        assert!(dir.join("sub").is_dir());
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(kind(write_atomic(&fifo, b"x")), GRAN_STATUS_IO);
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(kind(write_atomic(&socket, b"x")), GRAN_STATUS_IO);
        assert!(fs::symlink_metadata(&socket).unwrap().file_type().is_socket());
        let e = write_atomic(Path::new("/dev/null"), b"x").unwrap_err();
        assert_eq!(e.status, GRAN_STATUS_IO);
        assert!(e.message.contains("a device"), "{}", e.message);
        assert!(fs::symlink_metadata("/dev/null").unwrap().file_type().is_char_device());
        symlink("/dev/null", dir.join("to-null")).unwrap();
        assert_eq!(kind(write_atomic(&dir.join("to-null"), b"x")), GRAN_STATUS_IO);
        assert!(fs::symlink_metadata(dir.join("to-null")).unwrap().file_type().is_symlink());
        // No temporary file is left anywhere.
        for folder in [dir.clone(), dir.join("sub")] {
            for entry in fs::read_dir(folder).unwrap().flatten() {
                assert!(!entry.file_name().to_string_lossy().ends_with(".tmp"), "{:?}", entry.path());
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
