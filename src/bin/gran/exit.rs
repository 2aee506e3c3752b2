//! Exit codes and errors: every failure is one line on stderr, `gran <command>: <message>`,
//! and an exit code that says what kind of failure it was (the C API's status + 10).

use crate::output::Out;
use gran::{Error, ErrorKind};

/// Bad command line: unknown option, missing or malformed value (clap's code).
pub const USAGE: i32 = 2;
/// Training stopped by Ctrl-C or SIGTERM at a step boundary; the checkpoint was written.
pub const INTERRUPTED: i32 = 130;

/// The exit code of a failure of `kind`: 10 + the C API's `GranStatus` value, except Ctrl-C.
pub fn code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::InvalidArgument => 11,
        ErrorKind::InvalidHandle => 12,
        ErrorKind::BufferTooSmall => 13,
        ErrorKind::Io => 14,
        ErrorKind::Format => 15,
        ErrorKind::Device => 16,
        ErrorKind::OutOfMemory => 17,
        ErrorKind::Cancelled => INTERRUPTED,
        ErrorKind::Busy => 19,
        ErrorKind::Diverged => 20,
        ErrorKind::Internal => 21,
        ErrorKind::Distributed => 22,
    }
}

/// Shown at the end of `gran --help`.
pub const HELP: &str = "\
Exit status:
    0    success
    2    bad command line (unknown option, missing or malformed value)
   11    invalid argument: a value gran refuses (e.g. a batch larger than the data)
   14    a file or folder could not be read or written
   15    a file is not what it should be (corrupt or truncated checkpoint, bad data file)
   16    device: CUDA asked for but absent, or a device error
   17    out of memory
   20    training diverged (NaN or infinite loss); the checkpoint is not updated
   21    internal error (a bug, or an unexpected libtorch failure)
   22    distributed training failed (a peer died, hung or was unreachable)
  130    training stopped by Ctrl-C or SIGTERM at a step boundary; the checkpoint was written
Errors are one line on stderr. With --json, stdout also gets {\"type\":\"error\",...}.
Codes 11-22 are 10 + the C API's GranStatus value.";

/// The name of a kind as the C API's status names it (lower case), for --json.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::InvalidHandle => "invalid_handle",
        ErrorKind::BufferTooSmall => "buffer_too_small",
        ErrorKind::Io => "io",
        ErrorKind::Format => "format",
        ErrorKind::Device => "device",
        ErrorKind::OutOfMemory => "out_of_memory",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::Busy => "busy",
        ErrorKind::Diverged => "diverged",
        ErrorKind::Internal => "internal",
        ErrorKind::Distributed => "distributed",
    }
}

/// One line: newlines and runs of blanks folded into single spaces.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints `e` as one line (and as JSON with --json) and exits with its code.
pub fn fail(command: &str, e: &Error, out: &Out) -> ! {
    crate::term::clear();
    let message = one_line(&e.message);
    let code = code(e.kind);
    eprintln!("gran {command}: {message}");
    if out.json {
        println!(
            "{}",
            serde_json::json!({"type": "error", "command": command, "kind": kind_name(e.kind),
                               "message": message, "exit_code": code})
        );
    }
    std::process::exit(code)
}

/// A command-line error from clap: --help and --version print as clap prints them; anything
/// else becomes one line naming the problem and where to look, with exit code 2.
pub fn usage(e: clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion => e.exit(),
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(USAGE)
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad command line");
            let first = first.trim().strip_prefix("error:").unwrap_or(first).trim();
            // The subcommand, when one was given, for the pointer to its --help.
            let args: Vec<String> = std::env::args().skip(1).collect();
            let sub = args.iter().find(|a| ["train", "sample", "steps", "gam", "eval", "info"].contains(&a.as_str()));
            let who = match sub {
                Some(s) => format!("gran {s}"),
                None => "gran".to_string(),
            };
            eprintln!("{who}: {} (see {who} --help)", one_line(first));
            std::process::exit(USAGE)
        }
    }
}

/// Ends the process quietly when a reader closes its pipe (`gran info m.safetensors | head -1`),
/// as Unix tools do: SIGPIPE's default action instead of Rust's "ignore", which would turn the
/// next write into a panic.
pub fn quiet_on_closed_pipe() {
    // SAFETY: sets the disposition of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A panic (a bug in gran, never a user's error) prints one line and exits with the internal
/// error's code; RUST_BACKTRACE set keeps Rust's own report with its backtrace.
pub fn one_line_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        crate::term::clear();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!(
            "gran: internal error{place}: {} (a bug: please report it; RUST_BACKTRACE=1 shows where)",
            one_line(&what)
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use gran::ffi::status::*;

    #[test]
    fn codes_are_the_c_statuses_plus_ten() {
        for (kind, status) in [
            (ErrorKind::InvalidArgument, GRAN_STATUS_INVALID_ARGUMENT),
            (ErrorKind::InvalidHandle, GRAN_STATUS_INVALID_HANDLE),
            (ErrorKind::BufferTooSmall, GRAN_STATUS_BUFFER_TOO_SMALL),
            (ErrorKind::Io, GRAN_STATUS_IO),
            (ErrorKind::Format, GRAN_STATUS_FORMAT),
            (ErrorKind::Device, GRAN_STATUS_DEVICE),
            (ErrorKind::OutOfMemory, GRAN_STATUS_OUT_OF_MEMORY),
            (ErrorKind::Busy, GRAN_STATUS_BUSY),
            (ErrorKind::Diverged, GRAN_STATUS_DIVERGED),
            (ErrorKind::Internal, GRAN_STATUS_INTERNAL),
            (ErrorKind::Distributed, GRAN_STATUS_DISTRIBUTED),
        ] {
            assert_eq!(code(kind), 10 + status, "{kind:?}");
        }
        assert_eq!(code(ErrorKind::Cancelled), INTERRUPTED);
    }

    #[test]
    fn messages_are_folded_to_one_line() {
        assert_eq!(one_line("a\n  b\tc\n"), "a b c");
    }
}
