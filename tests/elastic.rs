//! Training that survives a lost process: `gran train --distributed --resume-if-exists` under
//! `torchrun --max-restarts=1` (the project's .venv has torchrun). Rank 1 is killed mid-run;
//! rank 0 writes the last step the group completed before it exits; torchrun restarts the
//! group, which continues from that checkpoint. The final checkpoint is byte-identical to the
//! one of a run that was never interrupted, and no completed step is lost.

use std::path::{Path, PathBuf};
use std::process::Command;

const GRAN: &str = env!("CARGO_BIN_EXE_gran");

fn torchrun() -> PathBuf {
    let t = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/torchrun");
    assert!(t.is_file(), "{} is missing: `make setup` installs torch (and torchrun) into .venv", t.display());
    t
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran_elastic_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One rank under torchrun: runs its arguments (a gran train command) with its output in
/// DIR/rank<R>_attempt<A>.{out,err}. On torchrun's first attempt rank 1 is killed (SIGKILL,
/// as a lost machine would be) once rank 0 has reported step KILL_AT.
const RANK_SCRIPT: &str = r#"#!/bin/bash
attempt=${TORCHELASTIC_RESTART_COUNT:-0}
log="$DIR/rank${RANK}_attempt${attempt}"
if [ -n "$KILL_AT" ] && [ "$RANK" = 1 ] && [ "$attempt" = 0 ]; then
    "$@" > "$log.out" 2> "$log.err" &
    pid=$!
    until grep -q "\"step\":$KILL_AT," "$DIR/rank0_attempt0.out" 2> /dev/null; do
        kill -0 $pid 2> /dev/null || exit 3
        sleep 0.01
    done
    kill -9 $pid
    exit 9
fi
exec "$@" > "$log.out" 2> "$log.err"
"#;

/// 2 processes of `gran train` on 512 digits to step 60 (checkpoint at the end only), with
/// rank 1 killed at step `kill_at` on the first attempt when given. Returns torchrun's exit
/// status; the ranks' output is in `dir`.
fn run_group(dir: &Path, kill_at: Option<u32>) -> i32 {
    let script = dir.join("rank.sh");
    std::fs::write(&script, RANK_SCRIPT).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k");
    let port = free_port().to_string();
    let status = Command::new(torchrun())
        .args(["--no-python", "--nproc-per-node=2", "--max-restarts=1", "--monitor-interval=0.1"])
        .arg(format!("--master-port={port}"))
        .arg("bash")
        .arg(&script)
        .arg(GRAN)
        .args(["train", "--data"])
        .arg(&data)
        .args(["--limit", "512", "--distributed", "-T", "2", "--width-scale", "0.0625", "--z-dim", "8"])
        .args(["--hidden-dim", "8", "-b", "16", "-n", "60", "--seed", "3", "--report-every", "1", "--json"])
        .args(["--resume-if-exists", "--device", "cpu", "-o"])
        .arg(dir.join("run.safetensors"))
        .env("DIR", dir)
        .env("KILL_AT", kill_at.map(|k| k.to_string()).unwrap_or_default())
        .env("OMP_NUM_THREADS", "1")
        .env_remove("LD_LIBRARY_PATH")
        .current_dir(dir)
        .output()
        .expect("torchrun runs");
    status.status.code().unwrap_or(-1)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The JSON result line of a rank's output.
fn result(out: &str) -> serde_json::Value {
    let line =
        out.lines().rev().find(|l| l.contains("\"type\":\"result\"")).unwrap_or_else(|| panic!("no result in {out}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_killed_rank_costs_no_completed_step_and_the_restarted_group_ends_where_an_uninterrupted_run_does() {
    let straight = scratch("straight");
    assert_eq!(run_group(&straight, None), 0, "{}", read(&straight.join("rank0_attempt0.err")));
    assert!(!straight.join("rank0_attempt1.out").exists(), "the uninterrupted run was restarted");

    let killed = scratch("killed");
    assert_eq!(run_group(&killed, Some(20)), 0, "torchrun gave up: {}", read(&killed.join("rank0_attempt0.err")));
    // Attempt 0: rank 0 lost its peer in a collective and wrote the last step the group
    // completed (no periodic checkpoint: only this save can have written it).
    let err = read(&killed.join("rank0_attempt0.err"));
    let held: u64 = err
        .split("holds step ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("rank 0 did not say it kept the last step: {err}"));
    assert!((20..60).contains(&held), "rank 0 kept step {held}: {err}");
    // Attempt 1 (torchrun's restart): both ranks continued from that step to the end.
    let last = result(&read(&killed.join("rank0_attempt1.out")));
    assert_eq!((last["first_step"].as_u64(), last["step"].as_u64()), (Some(held), Some(60)), "{last}");
    assert!(killed.join("rank1_attempt1.out").exists());
    let (a, b) = (
        std::fs::read(straight.join("run.safetensors")).unwrap(),
        std::fs::read(killed.join("run.safetensors")).unwrap(),
    );
    assert!(a == b, "the restarted group's checkpoint differs from the uninterrupted run's");

    // The same command once more: the run is complete, nothing changes.
    assert_eq!(run_group(&killed, None), 0);
    assert!(std::fs::read(killed.join("run.safetensors")).unwrap() == b);
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&killed);
}
