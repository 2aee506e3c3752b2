//! Data-parallel training across processes (crate::dist, Gloo on 127.0.0.1): each test spawns
//! two processes of this test binary (the ignored `rank` test, told what to do by environment
//! variables), which train together and write what they ended with to files the test reads.

use gran::checkpoint;
use gran::dist::{Backend, GroupSettings, ProcessGroup};
use gran::train::Group;
use gran::{train, ErrorKind, Model, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gran_ddp_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts rank `rank` of 2 doing `scenario` in `dir` (`extra` may override WORLD_SIZE). Its
/// stderr goes to `dir/stderr<rank>.txt` (the test harness writes to stdout: what lands there
/// is the library's, or a panic's).
fn spawn(scenario: &str, rank: u32, port: u16, dir: &Path, extra: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.stderr(std::fs::File::create(dir.join(format!("stderr{rank}.txt"))).unwrap());
    c.args(["--ignored", "--exact", "rank", "--nocapture", "--test-threads=1"])
        .env("GRAN_DDP_SCENARIO", scenario)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("GRAN_DDP_DIR", dir)
        .env("OMP_NUM_THREADS", "1");
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Waits for both ranks (at most `limit`), returning their exit codes.
fn wait_all(children: &mut [Child], limit: Duration) -> Vec<Option<i32>> {
    let start = Instant::now();
    let mut codes: Vec<Option<Option<i32>>> = vec![None; children.len()];
    while codes.iter().any(|c| c.is_none()) {
        for (i, ch) in children.iter_mut().enumerate() {
            if codes[i].is_none() {
                if let Some(s) = ch.try_wait().unwrap() {
                    codes[i] = Some(s.code());
                }
            }
        }
        if start.elapsed() > limit {
            for ch in children.iter_mut() {
                let _ = ch.kill();
            }
            panic!("the ranks did not finish within {limit:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    codes.into_iter().map(|c| c.unwrap()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn settings_from_env(timeout: Duration) -> GroupSettings {
    GroupSettings::from_env(Backend::Gloo, timeout).unwrap()
}

fn config(iterations: u64, group: &Arc<ProcessGroup>) -> TrainConfig {
    TrainConfig {
        iterations,
        batch_size: 16,
        report_every: 1,
        seed: 7,
        group: Some(Group(group.clone())),
        recompute: std::env::var("GRAN_DDP_RECOMPUTE").is_ok(),
        ..Default::default()
    }
}

/// One rank of a test (run by the tests above it, never on its own).
#[test]
#[ignore]
fn rank() {
    let Ok(scenario) = std::env::var("GRAN_DDP_SCENARIO") else { return };
    let dir = PathBuf::from(std::env::var("GRAN_DDP_DIR").unwrap());
    if scenario == "rendezvous" {
        // A rendezvous that cannot complete (GRAN_DDP_TIMEOUT_MS): the error, and how long it took.
        let timeout = Duration::from_millis(std::env::var("GRAN_DDP_TIMEOUT_MS").unwrap().parse().unwrap());
        let start = Instant::now();
        let line = match ProcessGroup::new(&settings_from_env(timeout)) {
            Ok(_) => "joined".to_string(),
            Err(e) => format!("{:?} {} {}", e.kind, start.elapsed().as_millis(), e.message),
        };
        std::fs::write(dir.join("rendezvous.txt"), line).unwrap();
        return;
    }
    if scenario == "nccl1" {
        // One rank on NCCL: trains on CUDA; without a GPU (or NCCL) the group is an error.
        let s = GroupSettings { backend: Backend::Nccl, ..settings_from_env(Duration::from_secs(60)) };
        let outcome = ProcessGroup::new(&s).and_then(|g| {
            let model = Model::new(&common::tiny(2))?;
            train(&model, &common::synthetic(96), &config(3, &Arc::new(g)), &mut |_| false)?;
            Ok(model.step())
        });
        let line = match outcome {
            Ok(step) => format!("ok {step}"),
            Err(e) => format!("{:?}: {}", e.kind, e.message),
        };
        std::fs::write(dir.join("nccl1.txt"), line).unwrap();
        return;
    }
    let timeout = Duration::from_millis(std::env::var("GRAN_DDP_TIMEOUT_MS").map_or(20_000, |v| v.parse().unwrap()));
    let group = Arc::new(ProcessGroup::new(&settings_from_env(timeout)).unwrap());
    let r = group.rank();
    // GRAN_DDP_CLASSES=K: a class-conditional model on labels i % K.
    let classes: u32 = std::env::var("GRAN_DDP_CLASSES").map_or(0, |v| v.parse().unwrap());
    let data = match classes {
        0 => common::synthetic(96),
        k => {
            let images = common::synthetic(96).images().unwrap().shallow_clone();
            gran::Dataset::new(images, Some((0..96).map(|i| (i % k) as u8).collect())).unwrap()
        }
    };
    let model = match std::env::var("GRAN_DDP_RESUME") {
        Ok(path) => checkpoint::load(Path::new(&path), Some(common::test_device())).unwrap(),
        Err(_) => Model::new(&gran::ModelConfig { classes, ..common::tiny(2) }).unwrap(),
    };
    let iterations: u64 = std::env::var("GRAN_DDP_STEPS").map_or(4, |v| v.parse().unwrap());
    let result = match scenario.as_str() {
        "train" => {
            // Rank 0 alone writes the run's checkpoint (which also re-estimates its averaged
            // generator's statistics: the ranks' digests must still agree at the end).
            let cfg = TrainConfig {
                checkpoint_path: Some(dir.join(format!("run{iterations}.safetensors"))),
                ..config(iterations, &group)
            };
            train(&model, &data, &cfg, &mut |_| false).map(|_| ())
        }
        "kill" => {
            let cfg = TrainConfig { checkpoint_path: Some(dir.join("kept.safetensors")), ..config(iterations, &group) };
            train(&model, &data, &cfg, &mut |p| {
                if r == 1 && p.step == 3 {
                    std::process::exit(0);
                }
                false
            })
            .map(|_| ())
        }
        "hang" => train(&model, &data, &config(iterations, &group), &mut |p| {
            if r == 1 && p.step == 3 {
                // Alive but stuck (a debugger, a deadlock, a swapped-out host) past the timeout.
                std::thread::sleep(Duration::from_secs(12));
            }
            false
        })
        .map(|_| ()),
        "cancel" => train(&model, &data, &config(iterations, &group), &mut |p| {
            if r == 1 && p.step == 3 {
                model.cancel();
            }
            false
        })
        .map(|_| ()),
        other => panic!("scenario {other}"),
    };
    let kind = match &result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{:?}: {}", e.kind, e.message),
    };
    let finite = model.read().named_tensors().iter().all(|(_, t)| {
        let t = t.detach().to_kind(tch::Kind::Double);
        t.isfinite().all().int64_value(&[]) == 1
    });
    std::fs::write(dir.join(format!("rank{r}.txt")), format!("{}\n{finite}\n{kind}\n", model.step())).unwrap();
    checkpoint::save(&model, &dir.join(format!("rank{r}.safetensors"))).unwrap();
}

/// The state of a checkpoint as named tensors.
fn tensors(path: &Path) -> Vec<(String, tch::Tensor)> {
    let m = checkpoint::load(path, Some(gran::DeviceSpec::Cpu)).unwrap();
    let st = m.read_fresh().unwrap();
    st.named_tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

/// Every test here needs process groups: a build without Gloo fails them (the Makefile's
/// `make setup` fetches gloo's headers, and CI builds with them) instead of passing untested.
fn require_gloo() {
    assert!(
        Backend::Gloo.built(),
        "this build of gran has no Gloo process groups (no gloo headers at build time: run `make setup`)"
    );
}

#[test]
fn two_ranks_hold_identical_weights_and_resume_in_one_process() {
    require_gloo();
    let dir = scratch("train");
    let port = free_port();
    let mut ranks: Vec<Child> = (0..2).map(|r| spawn("train", r, port, &dir, &[])).collect();
    assert_eq!(wait_all(&mut ranks, Duration::from_secs(300)), [Some(0), Some(0)]);
    for r in 0..2 {
        let lines = read(&dir.join(format!("rank{r}.txt")));
        assert_eq!(lines.lines().collect::<Vec<_>>(), ["4", "true", "ok"], "rank {r}");
        // A data-parallel run prints nothing of its own on the host's stderr.
        assert_eq!(read(&dir.join(format!("stderr{r}.txt"))), "", "rank {r} wrote to stderr");
    }
    let run = tensors(&dir.join("run4.safetensors"));
    assert!(run.iter().zip(&tensors(&dir.join("rank0.safetensors"))).all(|((n, x), (m, y))| n == m && x.equal(y)));
    // Weights, batch-norm statistics, both Adam states and the averaged generator: bit-identical.
    let (a, b) = (tensors(&dir.join("rank0.safetensors")), tensors(&dir.join("rank1.safetensors")));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|(n, _)| n.starts_with("adam_g.")) && a.iter().any(|(n, _)| n.starts_with("ema.")));
    for ((n, x), (m, y)) in a.iter().zip(&b) {
        assert_eq!(n, m);
        assert!(x.equal(y), "{n} differs between the ranks");
    }
    // The run trained: its weights are not the initial ones.
    let fresh = Model::new(&common::tiny(2)).unwrap();
    let init: Vec<(String, tch::Tensor)> = fresh.read().named_tensors();
    let moved = init
        .iter()
        .filter(|(n, t)| n.starts_with("g.") && a.iter().any(|(m, x)| m == n && !x.equal(&t.to(x.device()))));
    assert!(moved.count() > 0);

    // The 2-process checkpoint (no world size in it) continues in one process.
    let m = checkpoint::load(&dir.join("rank0.safetensors"), Some(common::test_device())).unwrap();
    let cfg = TrainConfig { iterations: 2, batch_size: 16, seed: 7, report_every: 0, ..Default::default() };
    train(&m, &common::synthetic(96), &cfg, &mut |_| false).unwrap();
    assert_eq!(m.step(), 6);

    // And a 1-process checkpoint continues in two.
    let one = Model::new(&common::tiny(2)).unwrap();
    train(&one, &common::synthetic(96), &cfg, &mut |_| false).unwrap();
    let saved = dir.join("one.safetensors");
    checkpoint::save(&one, &saved).unwrap();
    let port = free_port();
    let resume = [("GRAN_DDP_RESUME", saved.display().to_string()), ("GRAN_DDP_STEPS", "3".to_string())];
    let mut ranks: Vec<Child> = (0..2).map(|r| spawn("train", r, port, &dir, &resume)).collect();
    assert_eq!(wait_all(&mut ranks, Duration::from_secs(300)), [Some(0), Some(0)]);
    for r in 0..2 {
        assert_eq!(read(&dir.join(format!("rank{r}.txt"))).lines().next(), Some("5"), "rank {r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per-step recomputation in a group: both ranks train (the generator's recomputed gradients
/// are averaged like the stored pass's) and end bit-identical.
#[test]
fn two_ranks_train_with_recomputation() {
    require_gloo();
    let dir = scratch("recompute");
    let port = free_port();
    let env = [("GRAN_DDP_RECOMPUTE", "1".to_string())];
    let mut ranks: Vec<Child> = (0..2).map(|r| spawn("train", r, port, &dir, &env)).collect();
    assert_eq!(wait_all(&mut ranks, Duration::from_secs(300)), [Some(0), Some(0)]);
    for r in 0..2 {
        assert_eq!(
            read(&dir.join(format!("rank{r}.txt"))).lines().collect::<Vec<_>>(),
            ["4", "true", "ok"],
            "rank {r}"
        );
    }
    let (a, b) = (tensors(&dir.join("rank0.safetensors")), tensors(&dir.join("rank1.safetensors")));
    assert!(!a.is_empty() && a.len() == b.len());
    for ((n, x), (m, y)) in a.iter().zip(&b) {
        assert!(n == m && x.equal(y), "{n} differs between the ranks");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A class-conditional model in a group: each rank takes its share of the minibatch's labels
/// with its images and of the generated classes; both ranks end bit-identical, the embeddings
/// trained.
#[test]
fn two_ranks_train_a_conditional_model() {
    require_gloo();
    let dir = scratch("conditional");
    let port = free_port();
    let env = [("GRAN_DDP_CLASSES", "4".to_string())];
    let mut ranks: Vec<Child> = (0..2).map(|r| spawn("train", r, port, &dir, &env)).collect();
    assert_eq!(wait_all(&mut ranks, Duration::from_secs(300)), [Some(0), Some(0)]);
    for r in 0..2 {
        assert_eq!(
            read(&dir.join(format!("rank{r}.txt"))).lines().collect::<Vec<_>>(),
            ["4", "true", "ok"],
            "rank {r}"
        );
    }
    let (a, b) = (tensors(&dir.join("rank0.safetensors")), tensors(&dir.join("rank1.safetensors")));
    assert!(a.iter().any(|(n, _)| n == "d.embed.weight") && a.len() == b.len());
    for ((n, x), (m, y)) in a.iter().zip(&b) {
        assert!(n == m && x.equal(y), "{n} differs between the ranks");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rank_that_dies_makes_the_other_fail_within_the_timeout_with_its_weights_intact() {
    require_gloo();
    let dir = scratch("kill");
    let port = free_port();
    let extra = [("GRAN_DDP_TIMEOUT_MS", "5000".to_string()), ("GRAN_DDP_STEPS", "50".to_string())];
    let start = Instant::now();
    let mut ranks: Vec<Child> = (0..2).map(|r| spawn("kill", r, port, &dir, &extra)).collect();
    let codes = wait_all(&mut ranks, Duration::from_secs(240));
    assert_eq!(codes, [Some(0), Some(0)], "rank 0 returned (no crash), rank 1 exited");
    let lines: Vec<String> = read(&dir.join("rank0.txt")).lines().map(String::from).collect();
    let step: u64 = lines[0].parse().unwrap();
    assert!((3..=4).contains(&step), "rank 0 kept the weights of step {step}");
    assert_eq!(lines[1], "true", "rank 0's weights are finite");
    assert!(lines[2].starts_with("Distributed:"), "{}", lines[2]);
    // Rank 0 wrote the step it kept to the run's checkpoint before returning, and said so.
    assert!(lines[2].contains(&format!("holds step {step}, the last the group completed")), "{}", lines[2]);
    let kept = checkpoint::load(&dir.join("kept.safetensors"), Some(common::test_device())).unwrap();
    assert_eq!(kept.step(), step);
    assert!(!dir.join("rank1.txt").exists());
    // Within the timeout (5 s) plus the start-up of two processes.
    assert!(start.elapsed() < Duration::from_secs(200), "{:?}", start.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rank_that_hangs_makes_the_other_fail_within_the_timeout() {
    require_gloo();
    let dir = scratch("hang");
    let port = free_port();
    let extra = [("GRAN_DDP_TIMEOUT_MS", "4000".to_string()), ("GRAN_DDP_STEPS", "30".to_string())];
    let mut ranks: Vec<Child> = (0..2).map(|r| spawn("hang", r, port, &dir, &extra)).collect();
    assert_eq!(wait_all(&mut ranks, Duration::from_secs(240)), [Some(0), Some(0)]);
    let lines: Vec<String> = read(&dir.join("rank0.txt")).lines().map(String::from).collect();
    assert!(lines[2].starts_with("Distributed:"), "{}", lines[2]);
    assert_eq!(lines[1], "true");
    let step: u64 = lines[0].parse().unwrap();
    assert!((3..=4).contains(&step), "rank 0 kept the weights of step {step}");
    // The stuck rank, once awake, finds its peer gone: an error too, not a hang.
    let late: Vec<String> = read(&dir.join("rank1.txt")).lines().map(String::from).collect();
    assert!(late[2].starts_with("Distributed:"), "{}", late[2]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What stands at the master's address in a rendezvous test.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// Accepts connections and never answers (a stuck or wrong service on the port).
    Silent,
    /// Accepts connections and answers with bytes that mean nothing.
    Garbage,
    /// Nothing listens: connections are refused.
    Nothing,
    /// This process is rank 0 and serves the store, and no other rank comes.
    Alone,
}

/// A listener on 127.0.0.1 that behaves as `peer` says (for as long as the test runs), and its
/// port.
fn listener(peer: Peer) -> u16 {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in l.incoming().flatten() {
            if let Peer::Garbage = peer {
                let junk: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
                let _ = conn.write_all(&junk);
            }
            held.push(conn);
        }
    });
    port
}

/// A rendezvous as rank 1 of 2 (rank 0 with `Alone`) against `peer`, in a child process with a
/// 2 s timeout: `Distributed` within 1.5x the timeout, and nothing on the child's stderr.
/// Returns how long it took (ms).
fn failed_rendezvous(peer: Peer) -> u128 {
    const TIMEOUT_MS: u128 = 2000;
    let dir = scratch(&format!("rendezvous_{peer:?}"));
    let (rank, port) = match peer {
        Peer::Silent | Peer::Garbage => (1, listener(peer)),
        Peer::Nothing => (1, free_port()),
        Peer::Alone => (0, free_port()),
    };
    let mut child = [spawn("rendezvous", rank, port, &dir, &[("GRAN_DDP_TIMEOUT_MS", TIMEOUT_MS.to_string())])];
    assert_eq!(wait_all(&mut child, Duration::from_secs(120)), [Some(0)], "{peer:?}");
    let line = read(&dir.join("rendezvous.txt"));
    let mut parts = line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("Distributed"), "{peer:?}: {line}");
    let ms: u128 = parts.next().unwrap().parse().unwrap();
    assert!(ms <= TIMEOUT_MS * 3 / 2, "{peer:?}: gave up after {ms} ms against a {TIMEOUT_MS} ms timeout: {line}");
    assert_eq!(read(&dir.join(format!("stderr{rank}.txt"))), "", "{peer:?}: the library wrote to stderr");
    let _ = std::fs::remove_dir_all(&dir);
    ms
}

#[test]
fn a_silent_master_fails_the_rendezvous_within_its_timeout() {
    require_gloo();
    failed_rendezvous(Peer::Silent);
}

#[test]
fn a_master_that_answers_garbage_fails_the_rendezvous_within_its_timeout() {
    require_gloo();
    failed_rendezvous(Peer::Garbage);
}

#[test]
fn an_unreachable_master_fails_the_rendezvous_within_its_timeout() {
    require_gloo();
    failed_rendezvous(Peer::Nothing);
}

#[test]
fn a_rank_0_left_alone_fails_the_rendezvous_within_its_timeout() {
    require_gloo();
    failed_rendezvous(Peer::Alone);
}

/// The rendezvous times of the cases above, 5 of each (`cargo test --release --test ddp --
/// --ignored rendezvous_times --nocapture`): a measurement for docs, not a check.
#[test]
#[ignore]
fn rendezvous_times() {
    for peer in [Peer::Silent, Peer::Garbage, Peer::Nothing, Peer::Alone] {
        let mut ms: Vec<u128> = (0..5).map(|_| failed_rendezvous(peer)).collect();
        ms.sort_unstable();
        println!("{peer:?}: median {} ms, {ms:?} against a 2000 ms timeout", ms[2]);
    }
}

#[test]
fn a_cancel_on_one_rank_stops_both_at_the_same_step() {
    require_gloo();
    let dir = scratch("cancel");
    let port = free_port();
    let mut ranks: Vec<Child> =
        (0..2).map(|r| spawn("cancel", r, port, &dir, &[("GRAN_DDP_STEPS", "20".into())])).collect();
    assert_eq!(wait_all(&mut ranks, Duration::from_secs(300)), [Some(0), Some(0)]);
    let a: Vec<String> = read(&dir.join("rank0.txt")).lines().map(String::from).collect();
    let b: Vec<String> = read(&dir.join("rank1.txt")).lines().map(String::from).collect();
    assert_eq!(a[0], b[0], "both ranks stopped at the same step");
    assert_eq!(a[0], "4", "the cancel of step 3's callback travels with step 4's reduction");
    for l in [&a, &b] {
        assert!(l[2].starts_with("Cancelled:"), "{}", l[2]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reduction itself: two ranks each holding one half's gradient get their mean, which is
/// the mean of both halves computed in one process (to float tolerance).
#[test]
fn the_averaged_gradient_is_the_mean_of_the_half_batch_gradients() {
    // Runs in this process as both ranks, on two threads (one group each).
    require_gloo();
    let port = free_port();
    let x = tch::Tensor::randn([8, 5], (tch::Kind::Float, tch::Device::Cpu));
    let w = tch::Tensor::randn([5, 3], (tch::Kind::Float, tch::Device::Cpu));
    let grad_of = |rows: tch::Tensor| -> tch::Tensor {
        let w = w.detach().set_requires_grad(true);
        let loss = rows.matmul(&w).tanh().square().mean(tch::Kind::Float);
        tch::Tensor::run_backward(&[loss], &[&w], false, false).pop().unwrap()
    };
    let halves = [grad_of(x.narrow(0, 0, 4)), grad_of(x.narrow(0, 4, 4))];
    let expected = (&halves[0] + &halves[1]) / 2.0;
    let threads: Vec<_> = (0..2u32)
        .map(|r| {
            let g = halves[r as usize].copy();
            std::thread::spawn(move || {
                let s = GroupSettings {
                    backend: Backend::Gloo,
                    rank: r,
                    world_size: 2,
                    master_addr: "127.0.0.1".into(),
                    master_port: port,
                    timeout: Duration::from_secs(30),
                    local_rank: 0,
                    agent_attempt: None,
                };
                let group = ProcessGroup::new(&s).unwrap();
                group.mean(&[g, tch::Tensor::new()]).unwrap().remove(0)
            })
        })
        .collect();
    for t in threads {
        let got = t.join().unwrap();
        let d = (&got - &expected).abs().max().double_value(&[]);
        assert!(d < 1e-6, "differs by {d}");
    }
    assert!(halves[0].not_equal_tensor(&halves[1]).any().int64_value(&[]) == 1);
}

/// NCCL with one rank: on CUDA (gpu/check.sh) it trains; elsewhere making the group is a clean
/// DISTRIBUTED error (no crash, no hang: it runs in a child process all the same).
#[test]
fn nccl_with_one_rank_trains_on_cuda_and_is_refused_cleanly_elsewhere() {
    let dir = scratch("nccl");
    let mut child = [spawn("nccl1", 0, free_port(), &dir, &[("WORLD_SIZE", "1".to_string())])];
    assert_eq!(wait_all(&mut child, Duration::from_secs(300)), [Some(0)]);
    let line = read(&dir.join("nccl1.txt"));
    if common::test_torch_device().is_cuda() {
        assert_eq!(line, "ok 3");
    } else {
        assert!(line.starts_with("Distributed:"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settings_from_a_partial_environment_are_refused() {
    // This process has no RANK (the test harness does not set it).
    if std::env::var("RANK").is_ok() {
        return;
    }
    let e = GroupSettings::from_env(Backend::Auto, Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("RANK"), "{}", e.message);
}
