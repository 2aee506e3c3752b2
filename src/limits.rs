//! Sizes, limits and allocations that come from a caller or a file.
//!
//! Every count, dimension or byte size that a caller or a file hands the library is multiplied
//! here with checked arithmetic (never saturating or wrapping), and every host buffer whose
//! size such a number decides is allocated fallibly: too large is `InvalidArgument` naming the
//! limit, and an allocation the system refuses is `OutOfMemory`. Nothing here aborts.
//!
//! Files are opened through [`open_regular`], which refuses FIFOs, devices and folders before
//! reading a byte, so a path can neither block a call forever nor feed it endless data.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The most samples one GAM or evaluation call draws from a model (2^20): 1,000 is the
/// paper's; a million takes hours on a CPU, more is never a measurement anyone waits for.
pub(crate) const MAX_METRIC_SAMPLES: u32 = 1 << 20;

/// The largest scoring chunk GAM accepts (images normalised together by their own batch
/// statistics): the memory of one chunk's forward pass grows with it.
pub(crate) const MAX_SCORE_BATCH: u32 = 4096;

/// The most bytes of pixels one PNG grid may hold before compression (1 GiB).
pub(crate) const MAX_PNG_BYTES: u64 = 1 << 30;

/// The longest checkpoint header accepted (16 MiB; gran's own are a few KiB).
pub(crate) const MAX_CHECKPOINT_HEADER: u64 = 16 << 20;

/// The largest single file read whole into memory where no header bounds it (an image of an
/// image folder, a CIFAR-10 batch): 1 GiB.
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 30;

/// `a * b` for sizes, or `InvalidArgument` saying what overflowed.
pub(crate) fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| too_large(what))
}

/// The product of `factors`, or `InvalidArgument` saying what overflowed.
pub(crate) fn product(factors: &[usize], what: &str) -> Result<usize> {
    factors.iter().try_fold(1usize, |acc, &f| acc.checked_mul(f)).ok_or_else(|| too_large(what))
}

fn too_large(what: &str) -> Error {
    Error::invalid(format!("{what} is larger than this machine can address ({} bytes at most)", isize::MAX))
}

/// The error for a host allocation of `bytes` that the system refused.
pub(crate) fn out_of_memory(bytes: usize, what: &str) -> Error {
    Error::new(ErrorKind::OutOfMemory, format!("out of host memory: {bytes} bytes for {what} could not be allocated"))
}

/// An empty vector with room for `n` elements, or `OutOfMemory` / `InvalidArgument`.
pub(crate) fn vec_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, n, what)?;
    Ok(v)
}

/// Room for `more` further elements in `v`, or `OutOfMemory` / `InvalidArgument`.
pub(crate) fn reserve<T>(v: &mut Vec<T>, more: usize, what: &str) -> Result<()> {
    let bytes = mul(more, std::mem::size_of::<T>().max(1), what)?;
    if bytes > isize::MAX as usize {
        return Err(too_large(what));
    }
    v.try_reserve_exact(more).map_err(|_| out_of_memory(bytes, what))
}

/// `n` copies of `value`, allocated fallibly.
pub(crate) fn vec_filled<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = vec_with_capacity(n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// Opens `path` for reading, refusing anything but a regular file (after following symbolic
/// links) before a byte is read: a FIFO would block forever, a device such as `/dev/zero` never
/// ends, and a folder is not data. Returns the file and its length.
///
/// The file is opened with `O_NONBLOCK`, so even a FIFO swapped in between the check and the
/// open cannot block; the type is checked on the opened file itself.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |e| Error::io(format!("reading {}", path.display()), e);
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a folder" } else { "not a regular file (a FIFO, socket or device)" };
        return Err(Error::new(ErrorKind::Io, format!("{} is {kind}: expected a regular file", path.display())));
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `limit` bytes (`what` names it in messages): `Io` for
/// anything but a regular file or a read error, `InvalidArgument` past the limit, `OutOfMemory`
/// when its buffer cannot be allocated.
pub(crate) fn read_regular(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if len > limit {
        return Err(Error::invalid(format!(
            "{} is {len} bytes: more than the {limit} bytes accepted for {what}",
            path.display()
        )));
    }
    read_exact_len(file, len, path)
}

/// Reads exactly `len` bytes from `file` into a buffer allocated fallibly up front; a file that
/// turned out shorter or longer is `Io` (it changed while being read).
pub(crate) fn read_exact_len(file: File, len: u64, path: &Path) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| too_large("the file"))?;
    // One byte more than expected, so that a file that grew meanwhile is seen.
    let room = n.checked_add(1).ok_or_else(|| too_large("the file"))?;
    let mut buf: Vec<u8> = vec_with_capacity(room, "a file's contents")?;
    file.take(len + 1).read_to_end(&mut buf).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if buf.len() as u64 != len {
        return Err(Error::new(
            ErrorKind::Io,
            format!("{} changed while being read ({len} bytes expected, {} read)", path.display(), buf.len()),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_sizes_are_invalid_arguments() {
        assert_eq!(product(&[3, 4, 5], "x").unwrap(), 60);
        let e = product(&[usize::MAX, 2], "the pixel buffer").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("the pixel buffer"), "{}", e.message);
        assert_eq!(mul(usize::MAX / 2 + 1, 2, "y").unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn impossible_allocations_are_errors_not_aborts() {
        // More than isize::MAX bytes: refused by the size check.
        let e = vec_with_capacity::<f32>(usize::MAX / 2, "latents").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        // Just under isize::MAX bytes: the allocator says no.
        let e = vec_with_capacity::<u8>(isize::MAX as usize - 4096, "pixels").unwrap_err();
        assert_eq!(e.kind, ErrorKind::OutOfMemory, "{}", e.message);
        assert_eq!(vec_filled(3, 7u8, "t").unwrap(), vec![7, 7, 7]);
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("gran-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = open_regular(&dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        assert!(e.message.contains("folder"), "{}", e.message);
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io, "{}", e.message);
        let file = dir.join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5, "t").unwrap(), b"12345");
        assert_eq!(read_regular(&file, 4, "t").unwrap_err().kind, ErrorKind::InvalidArgument);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
