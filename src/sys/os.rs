//! The operating system calls gran makes beside the standard library's.

/// Whether process `pid` exists (a process of another user counts as existing).
pub(crate) fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}
