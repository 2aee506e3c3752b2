//! Process groups for data-parallel training: N processes (ranks), each with a copy of the
//! model, that average their gradients every step. Built on PyTorch's own distributed engine,
//! c10d (crate::sys::dist): a `TCPStore` rendezvous served by rank 0, then `ProcessGroupGloo` for
//! CPU tensors, or `ProcessGroupNCCL` for CUDA tensors where the build found NCCL's headers.
//!
//! A group is made from explicit [`GroupSettings`] or from the environment `torchrun` sets
//! ([`GroupSettings::from_env`]: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Every
//! collective waits at most the group's timeout: a peer that died, hangs or cannot be reached
//! makes it fail with a `Distributed` error, never a hang or a crash. The trainer's use of a
//! group (what is reduced when) is in crate::train::run.

use crate::error::{Error, ErrorKind, Result};
use crate::sys::dist::{C10dGroup, Engine, PendingWork, ReduceOp, Rendezvous};
use std::time::Duration;
use tch::{Kind, Tensor};

/// The largest bucket of one all-reduce, in elements (16 MiB of float32): a network's gradients
/// go in as few buckets as fit, each one flat tensor, all started before any is waited for.
pub(crate) const BUCKET_ELEMENTS: i64 = 4 << 20;

/// How long joining a group may take beyond its timeout (the rendezvous and the backend's
/// connections are bounded together by the timeout plus this).
pub const JOIN_MARGIN: Duration = Duration::from_millis(500);

/// Joins a group on a thread of its own and waits for it at most `limit`. c10d bounds most of
/// a rendezvous by the timeout, but not every wait: a peer that accepts the connection and then
/// stays silent (a stuck or wrong service on the port) would block its handshake without end.
/// Past `limit` the join is a `Distributed` error; the attempt is left to end on its thread
/// (its connection closes when the peer closes it), and a group it makes after all is freed.
fn join_within(rendezvous: Rendezvous, what: String, limit: Duration) -> Result<C10dGroup> {
    let (tx, rx) = std::sync::mpsc::channel();
    let attempt = what.clone();
    std::thread::Builder::new()
        .name("gran-rendezvous".into())
        .spawn(move || {
            let _ = tx.send(C10dGroup::join(&rendezvous, &attempt));
        })
        .map_err(|e| Error::io("starting the rendezvous thread", e))?;
    match rx.recv_timeout(limit) {
        Ok(joined) => joined,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::new(
            ErrorKind::Distributed,
            format!("{what} failed: no complete rendezvous within {} ms", limit.as_millis()),
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(Error::internal(format!("{what}: the rendezvous thread ended without an answer")))
        }
    }
}

/// The largest world size gran accepts (a sanity bound on a value read from the environment).
pub const MAX_WORLD: u32 = 4096;

/// Which c10d backend a group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// NCCL where CUDA is available (and NCCL built in), else Gloo. A model on the CPU of a
    /// machine with GPUs trains with `Gloo`.
    Auto,
    Gloo,
    Nccl,
}

impl Backend {
    /// The engine a group of this backend runs on (`Auto` once resolved; unresolved, Gloo's).
    fn engine(self) -> Engine {
        match self {
            Backend::Auto | Backend::Gloo => Engine::Gloo,
            Backend::Nccl => Engine::Nccl,
        }
    }

    /// Whether this build of gran has the backend.
    pub fn built(self) -> bool {
        self.engine().built()
    }
}

/// How to make a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSettings {
    pub backend: Backend,
    /// This process's rank, in 0..world_size.
    pub rank: u32,
    pub world_size: u32,
    /// Where rank 0 serves the rendezvous store (it listens on `port`; the others connect).
    pub master_addr: String,
    pub master_port: u16,
    /// The longest any rendezvous or collective may wait.
    pub timeout: Duration,
    /// The CUDA device of this rank (NCCL; torchrun's LOCAL_RANK).
    pub local_rank: u32,
    /// `Some(attempt)`: a launcher's agent serves the rendezvous store at the master address
    /// (torchrun: TORCHELASTIC_USE_AGENT_STORE=True, TORCHELASTIC_RESTART_COUNT=attempt), so
    /// every rank connects to it and keys the rendezvous under the attempt, as torch.distributed
    /// does: a group that torchrun restarts (--max-restarts) meets afresh. `None`: rank 0 serves
    /// the store.
    pub agent_attempt: Option<u32>,
}

impl GroupSettings {
    /// The settings `torchrun` (and `torch.distributed.launch`) put in the environment: RANK,
    /// WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and LOCAL_RANK (0 when unset).
    pub fn from_env(backend: Backend, timeout: Duration) -> Result<GroupSettings> {
        let var = |name: &str| -> Result<String> {
            std::env::var(name).map_err(|_| {
                Error::invalid(format!(
                    "{name} is not set: a process group from the environment needs RANK, WORLD_SIZE, MASTER_ADDR \
                     and MASTER_PORT (as torchrun sets them)"
                ))
            })
        };
        let num = |name: &str, text: String| -> Result<u64> {
            text.trim().parse::<u64>().map_err(|_| Error::invalid(format!("{name}={text:?} is not a whole number")))
        };
        let local = std::env::var("LOCAL_RANK").ok().map(|v| num("LOCAL_RANK", v)).transpose()?.unwrap_or(0);
        let agent_attempt = match std::env::var("TORCHELASTIC_USE_AGENT_STORE").as_deref() {
            Ok("True") => {
                let attempt = std::env::var("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|_| "0".into());
                Some(
                    u32::try_from(num("TORCHELASTIC_RESTART_COUNT", attempt)?)
                        .map_err(|_| Error::invalid("TORCHELASTIC_RESTART_COUNT is too large"))?,
                )
            }
            _ => None,
        };
        let s = GroupSettings {
            backend,
            rank: u32::try_from(num("RANK", var("RANK")?)?).map_err(|_| Error::invalid("RANK is too large"))?,
            world_size: u32::try_from(num("WORLD_SIZE", var("WORLD_SIZE")?)?)
                .map_err(|_| Error::invalid("WORLD_SIZE is too large"))?,
            master_addr: var("MASTER_ADDR")?,
            master_port: u16::try_from(num("MASTER_PORT", var("MASTER_PORT")?)?)
                .map_err(|_| Error::invalid("MASTER_PORT is not a port (0..65535)"))?,
            timeout,
            local_rank: u32::try_from(local).map_err(|_| Error::invalid("LOCAL_RANK is too large"))?,
            agent_attempt,
        };
        s.validate()?;
        Ok(s)
    }

    /// `InvalidArgument` for settings no group can have.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.world_size == 0 || self.world_size > MAX_WORLD {
            return Err(Error::invalid(format!("world size {} is not in 1..={MAX_WORLD}", self.world_size)));
        }
        if self.rank >= self.world_size {
            return Err(Error::invalid(format!("rank {} is not below the world size {}", self.rank, self.world_size)));
        }
        if self.master_addr.is_empty() || self.master_addr.contains('\0') {
            return Err(Error::invalid("the master address is empty or holds a NUL byte"));
        }
        if self.master_port == 0 {
            return Err(Error::invalid("master port 0: name the port rank 0 listens on"));
        }
        let ms = self.timeout.as_millis();
        if !(1..=86_400_000).contains(&ms) {
            return Err(Error::invalid(format!("timeout {ms} ms is not in 1 ms ..= 24 h")));
        }
        if self.local_rank > MAX_WORLD {
            return Err(Error::invalid(format!("local rank {} is too large", self.local_rank)));
        }
        Ok(())
    }
}

/// A c10d process group (freed on drop). Its collectives are called by one thread at a time
/// (the trainer holds the group for a run); the handle may move between threads.
pub struct ProcessGroup {
    c10d: C10dGroup,
    settings: GroupSettings,
    backend: Backend,
}

impl ProcessGroup {
    /// Joins the group: waits (at most the timeout) until all `world_size` ranks have met at
    /// the store.
    pub fn new(settings: &GroupSettings) -> Result<ProcessGroup> {
        settings.validate()?;
        let backend = match settings.backend {
            Backend::Auto if Backend::Nccl.built() && tch::Cuda::is_available() => Backend::Nccl,
            Backend::Auto => Backend::Gloo,
            b => b,
        };
        if !backend.built() {
            return Err(Error::new(
                ErrorKind::Distributed,
                format!("this build of gran has no {backend:?} process groups (see DEVELOPERS.md, \"Data-parallel training\")"),
            ));
        }
        let what = format!(
            "joining process group (rank {} of {}, store {}:{})",
            settings.rank, settings.world_size, settings.master_addr, settings.master_port
        );
        let rendezvous = Rendezvous {
            engine: backend.engine(),
            rank: settings.rank,
            world_size: settings.world_size,
            host: settings.master_addr.clone(),
            port: settings.master_port,
            timeout_ms: settings.timeout.as_millis() as i64,
            device: settings.local_rank,
            agent_attempt: settings.agent_attempt,
        };
        let c10d = join_within(rendezvous, what, settings.timeout + JOIN_MARGIN)?;
        Ok(ProcessGroup { c10d, settings: settings.clone(), backend })
    }

    pub fn rank(&self) -> u32 {
        self.settings.rank
    }

    pub fn world_size(&self) -> u32 {
        self.settings.world_size
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This process's GPU for NCCL (torchrun's LOCAL_RANK).
    pub fn local_rank(&self) -> u32 {
        self.settings.local_rank
    }

    /// Each tensor replaced in place by its element-wise maximum over the ranks (contiguous
    /// tensors of one device and float kind).
    fn all_reduce_max(&self, tensors: &[&Tensor]) -> Result<()> {
        if tensors.is_empty() {
            return Ok(());
        }
        self.c10d.all_reduce(tensors, ReduceOp::Max, "all-reduce (max)")
    }

    /// The element-wise maximum of `values` over the ranks: one all-reduce of a float64 tensor
    /// on the device the backend reduces on (this rank's GPU under NCCL, which takes CUDA
    /// tensors only; the CPU under Gloo).
    pub(crate) fn max_over_ranks(&self, values: &[f64]) -> Result<Vec<f64>> {
        let device = match self.backend {
            Backend::Nccl => tch::Device::Cuda(self.settings.local_rank as usize),
            Backend::Auto | Backend::Gloo => tch::Device::Cpu,
        };
        let t = Tensor::f_from_slice(values)?.f_to_device(device)?;
        self.all_reduce_max(&[&t])?;
        Ok(Vec::<f64>::try_from(&t.f_to_device(tch::Device::Cpu)?)?)
    }

    /// Each tensor replaced in place by rank `root`'s.
    pub(crate) fn broadcast(&self, tensors: &[&Tensor], root: u32) -> Result<()> {
        if tensors.is_empty() {
            return Ok(());
        }
        self.c10d.broadcast(tensors, root)
    }

    /// The mean over the ranks of each tensor of `tensors` (undefined ones stay undefined),
    /// returned as new tensors: the defined ones are flattened into buckets of at most
    /// [`BUCKET_ELEMENTS`] float32 values, all buckets are all-reduced at once, and the sums
    /// divided by the world size come back in the tensors' shapes and kinds.
    pub fn mean(&self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        self.start_mean(tensors)?.finish()
    }

    /// [`ProcessGroup::mean`] started and not waited for: the buckets travel while the caller
    /// computes (anything that does not need the mean), and [`PendingMean::finish`] waits for
    /// them. The inputs may change meanwhile: the buckets are copies.
    pub(crate) fn start_mean(&self, tensors: &[Tensor]) -> Result<PendingMean> {
        let defined: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].defined()).collect();
        let mut buckets: Vec<Vec<usize>> = Vec::new();
        let mut size = 0i64;
        for &i in &defined {
            let n = tensors[i].numel() as i64;
            if buckets.is_empty() || (size + n > BUCKET_ELEMENTS && size > 0) {
                buckets.push(Vec::new());
                size = 0;
            }
            buckets.last_mut().expect("pushed").push(i);
            size += n;
        }
        let flat: Vec<Tensor> = buckets
            .iter()
            .map(|b| {
                let parts: Vec<Tensor> = b
                    .iter()
                    .map(|&i| tensors[i].f_to_kind(Kind::Float)?.f_reshape([-1]))
                    .collect::<std::result::Result<_, _>>()?;
                Ok(Tensor::f_cat(&parts, 0)?)
            })
            .collect::<Result<_>>()?;
        let shapes = tensors.iter().map(|t| t.defined().then(|| (t.size(), t.kind()))).collect();
        let work = if flat.is_empty() { None } else { Some(self.c10d.all_reduce_start(&flat)?) };
        Ok(PendingMean { work, buckets, flat, shapes, world: self.world_size() })
    }
}

/// A mean over the ranks on its way ([`ProcessGroup::start_mean`]). Dropped without
/// [`PendingMean::finish`], it lets the reduction run to its end on c10d's threads unobserved.
pub(crate) struct PendingMean {
    /// The reduction of `flat`; `None` when there was nothing to reduce.
    work: Option<PendingWork>,
    buckets: Vec<Vec<usize>>,
    flat: Vec<Tensor>,
    /// Each input's shape and kind (None: undefined).
    shapes: Vec<Option<(Vec<i64>, Kind)>>,
    world: u32,
}

impl PendingMean {
    /// Waits for the reduction (at most the group's timeout) and returns the means, as
    /// [`ProcessGroup::mean`] does.
    pub(crate) fn finish(mut self) -> Result<Vec<Tensor>> {
        if let Some(work) = &mut self.work {
            work.wait()?;
        }
        let scale = 1.0 / f64::from(self.world);
        let mut out: Vec<Tensor> = self.shapes.iter().map(|_| Tensor::new()).collect();
        for (b, f) in self.buckets.iter().zip(&self.flat) {
            let _ = f.shallow_clone().f_mul_scalar_(scale)?;
            let mut at = 0i64;
            for &i in b {
                let (size, kind) = self.shapes[i].as_ref().expect("a bucket holds defined tensors");
                let n: i64 = size.iter().product();
                out[i] = f.f_narrow(0, at, n)?.f_view(size.as_slice())?.f_to_kind(*kind)?;
                at += n;
            }
        }
        Ok(out)
    }
}

/// Whether this process is the one that writes and reports for a run: rank 0 of a group, or
/// the only process.
pub fn leads(group: Option<&ProcessGroup>) -> bool {
    group.map_or(true, |g| g.rank() == 0)
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup({:?}, rank {} of {})", self.backend, self.rank(), self.world_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rank: u32, world: u32) -> GroupSettings {
        GroupSettings {
            backend: Backend::Gloo,
            rank,
            world_size: world,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            timeout: Duration::from_secs(5),
            local_rank: 0,
            agent_attempt: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings(0, 1).validate().is_ok());
        for bad in [settings(1, 1), settings(0, 0), GroupSettings { master_port: 0, ..settings(0, 2) }] {
            assert_eq!(bad.validate().unwrap_err().kind, ErrorKind::InvalidArgument);
        }
        let no_time = GroupSettings { timeout: Duration::ZERO, ..settings(0, 2) };
        assert!(no_time.validate().unwrap_err().message.contains("timeout"));
    }

    /// A group of one (its own store on a free port): the mean of one rank is the tensor
    /// itself, in its shapes, kinds and bucket layout, and an undefined gradient stays so.
    #[test]
    fn a_group_of_one_averages_to_itself() {
        assert!(Backend::Gloo.built(), "this build has no Gloo process groups: run `make setup` before building");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let g = ProcessGroup::new(&GroupSettings { master_port: port, ..settings(0, 1) }).unwrap();
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        let b = Tensor::from_slice(&[0.5f64]);
        let out = g.mean(&[a.shallow_clone(), Tensor::new(), b.shallow_clone()]).unwrap();
        assert_eq!(Vec::<f32>::try_from(&out[0].reshape([-1])).unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(out[0].size(), [2, 2]);
        assert!(!out[1].defined());
        assert_eq!(out[2].kind(), Kind::Double);
        assert_eq!(g.max_over_ranks(&[3.0, -2.5]).unwrap(), [3.0, -2.5]);
        // Started, then the input changed before the wait: the mean is of what was started.
        let c = Tensor::from_slice(&[7.0f32, -1.0]);
        let pending = g.start_mean(&[c.shallow_clone()]).unwrap();
        let _ = c.shallow_clone().fill_(0.0);
        assert_eq!(Vec::<f32>::try_from(&pending.finish().unwrap()[0]).unwrap(), [7.0, -1.0]);
        // One dropped unwaited, then nothing to reduce: the group goes on.
        drop(g.start_mean(&[c.shallow_clone()]).unwrap());
        assert!(!g.start_mean(&[Tensor::new()]).unwrap().finish().unwrap()[0].defined());
        assert_eq!(g.mean(&[b]).unwrap()[0].double_value(&[0]), 0.5);
    }
}
