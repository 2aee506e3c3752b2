//! Cases in child processes, for the hostile-input runners (`harness = false`): tests/hostile.rs
//! (libgran) and runtime/tests/hostile.rs (libgran_runtime) include this file. A case runs in
//! the test program run again with `--case NAME`, so that an abort, a signal or a hang fails
//! that case instead of the runner.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A case: what it checked, or why it failed.
pub type Outcome = Result<String, String>;

/// In the child: prints `outcome` (None: no case of that name) as [`in_child`] reads it, and
/// exits with its status.
pub fn report(name: &str, outcome: Option<Outcome>) -> ! {
    match outcome {
        Some(Ok(detail)) => {
            println!("OK {detail}");
            std::process::exit(0)
        }
        Some(Err(why)) => {
            println!("FAIL {why}");
            std::process::exit(1)
        }
        None => {
            println!("FAIL no case {name}");
            std::process::exit(2)
        }
    }
}

/// Runs case `name` (with `extra` arguments after it) in a child process: its result, or a
/// failure for a signal, a non-zero exit or a run past `hang_limit` (then the child is killed).
pub fn in_child(name: &str, extra: &[&str], hang_limit: Duration) -> Outcome {
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--case", name])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Read stdout on a thread so that a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let started = Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => {
                let out = reader.join().unwrap_or_default();
                let last = out.lines().last().unwrap_or("").to_string();
                return match (status.code(), last.strip_prefix("OK ")) {
                    (Some(0), Some(detail)) => Ok(format!("{detail} ({:.1} s)", started.elapsed().as_secs_f64())),
                    (Some(code), _) => Err(format!("exit code {code}: {out}")),
                    (None, _) => Err(format!("killed by a signal ({status}): {out}")),
                };
            }
            None if started.elapsed() > hang_limit => {
                child.kill().ok();
                child.wait().ok();
                return Err(format!("still running after {} s: a hang", hang_limit.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
