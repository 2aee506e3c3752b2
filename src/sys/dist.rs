//! c10d process groups (csrc/dist.cpp): a `TCPStore` rendezvous, then `ProcessGroupGloo` or
//! `ProcessGroupNCCL`, and the collectives gran uses. Handles only; what a group means for
//! training (settings, buckets, means) is crate::dist's.

use super::{call, handles};
use crate::error::{Error, ErrorKind, Result};
use std::os::raw::{c_char, c_int, c_void};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    /// csrc/dist.cpp
    fn grn_dist_backend_built(backend: c_int) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn grn_dist_new(
        backend: c_int,
        rank: c_int,
        world: c_int,
        host: *const c_char,
        port: c_int,
        timeout_ms: i64,
        device: c_int,
        agent_attempt: c_int,
        out: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_dist_all_reduce(
        g: *mut c_void,
        tensors: *const *mut C_tensor,
        n: usize,
        op: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_dist_broadcast(
        g: *mut c_void,
        tensors: *const *mut C_tensor,
        n: usize,
        root: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_dist_all_reduce_start(
        g: *mut c_void,
        tensors: *const *mut C_tensor,
        n: usize,
        op: c_int,
        out: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_dist_wait(pending: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn grn_dist_pending_free(pending: *mut c_void);
    fn grn_dist_free(g: *mut c_void);
}

/// The reduction a collective applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReduceOp {
    Sum,
    Max,
}

impl ReduceOp {
    fn code(self) -> c_int {
        match self {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
        }
    }
}

/// The c10d backend a group runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Gloo,
    Nccl,
}

impl Engine {
    fn code(self) -> c_int {
        match self {
            Engine::Gloo => 1,
            Engine::Nccl => 2,
        }
    }

    /// Whether this build has the engine.
    pub(crate) fn built(self) -> bool {
        // SAFETY: no pointers; returns a constant.
        unsafe { grn_dist_backend_built(self.code()) != 0 }
    }
}

/// Where and how to join a group, as the shim takes it.
#[derive(Clone)]
pub(crate) struct Rendezvous {
    pub(crate) engine: Engine,
    pub(crate) rank: u32,
    pub(crate) world_size: u32,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) timeout_ms: i64,
    /// The CUDA device of this rank (NCCL).
    pub(crate) device: u32,
    /// `Some(attempt)`: a launcher's agent serves the store (crate::dist::GroupSettings).
    pub(crate) agent_attempt: Option<u32>,
}

/// A joined c10d process group (freed on drop).
pub(crate) struct C10dGroup {
    raw: *mut c_void,
}

// SAFETY: c10d's process groups and stores are used from any thread (PyTorch calls them from
// Python threads); gran calls one group's collectives from one training run at a time.
unsafe impl Send for C10dGroup {}
unsafe impl Sync for C10dGroup {}

impl Drop for C10dGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from grn_dist_new and is freed once, here.
        unsafe { grn_dist_free(self.raw) }
    }
}

fn failed(what: &str, f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    call(ErrorKind::Distributed, what, f)
}

impl C10dGroup {
    /// Joins the group: waits (at most the timeout) until all ranks have met at the store.
    /// `what` names the attempt in the error.
    pub(crate) fn join(r: &Rendezvous, what: &str) -> Result<C10dGroup> {
        let host = std::ffi::CString::new(r.host.as_str()).map_err(|_| Error::invalid("NUL in address"))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `host` is a NUL-terminated string for the call; `raw` receives the group.
        failed(what, |e, n| unsafe {
            grn_dist_new(
                r.engine.code(),
                r.rank as c_int,
                r.world_size as c_int,
                host.as_ptr(),
                c_int::from(r.port),
                r.timeout_ms,
                r.device as c_int,
                r.agent_attempt.map_or(-1, |a| a.min(c_int::MAX as u32) as c_int),
                &mut raw,
                e,
                n,
            )
        })?;
        if raw.is_null() {
            return Err(Error::internal(format!("{what}: the shim returned no group")));
        }
        Ok(C10dGroup { raw })
    }

    /// Each tensor replaced in place by the reduction `op` over the ranks (waited for).
    pub(crate) fn all_reduce(&self, tensors: &[&Tensor], op: ReduceOp, what: &str) -> Result<()> {
        let handles = handles(tensors);
        // SAFETY: every handle is a live tensor borrowed for the call.
        failed(what, |e, n| unsafe { grn_dist_all_reduce(self.raw, handles.as_ptr(), handles.len(), op.code(), e, n) })
    }

    /// Each tensor replaced in place by rank `root`'s.
    pub(crate) fn broadcast(&self, tensors: &[&Tensor], root: u32) -> Result<()> {
        let handles = handles(tensors);
        // SAFETY: every handle is a live tensor borrowed for the call.
        failed("broadcast", |e, n| unsafe {
            grn_dist_broadcast(self.raw, handles.as_ptr(), handles.len(), root as c_int, e, n)
        })
    }

    /// A sum all-reduce of `tensors` started and not waited for. The tensors must stay alive
    /// and unread until [`PendingWork::wait`] returns or the work is dropped: the returned
    /// work owns shallow copies of them.
    pub(crate) fn all_reduce_start(&self, tensors: &[Tensor]) -> Result<PendingWork> {
        let handles = handles(tensors);
        let mut raw = std::ptr::null_mut();
        // SAFETY: every handle is a live tensor, kept alive (in the returned work) until the
        // reduction is waited for or freed; `raw` receives the pending reduction.
        failed("all-reduce", |e, n| unsafe {
            grn_dist_all_reduce_start(self.raw, handles.as_ptr(), handles.len(), ReduceOp::Sum.code(), &mut raw, e, n)
        })?;
        if raw.is_null() {
            return Err(Error::internal("all-reduce: the shim returned no pending work"));
        }
        Ok(PendingWork { raw, _tensors: tensors.iter().map(Tensor::shallow_clone).collect() })
    }
}

/// A collective on its way (c10d work). Dropped without [`PendingWork::wait`], it lets the
/// work run to its end on c10d's threads unobserved.
pub(crate) struct PendingWork {
    raw: *mut c_void,
    /// What the work reads and writes, alive until it is freed.
    _tensors: Vec<Tensor>,
}

// SAFETY: c10d work objects are waited for from any thread (as PyTorch's Python threads do).
unsafe impl Send for PendingWork {}

impl PendingWork {
    /// Waits for the work (at most the group's timeout).
    pub(crate) fn wait(&mut self) -> Result<()> {
        // SAFETY: `raw` is the live pending reduction this value owns.
        failed("all-reduce", |e, n| unsafe { grn_dist_wait(self.raw, e, n) })
    }
}

impl Drop for PendingWork {
    fn drop(&mut self) {
        // SAFETY: `raw` came from grn_dist_all_reduce_start and is freed once, here.
        unsafe { grn_dist_pending_free(self.raw) }
    }
}
