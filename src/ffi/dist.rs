//! Exported functions on process groups (data-parallel training, crate::dist): making one from
//! explicit settings or from torchrun's environment, asking its rank and size, freeing it. A
//! group is used by `gran_train` through `GranTrainConfig.process_group`.

use super::boundary::{arg_mut, arg_opt_path, guard, read_versioned, Versioned};
use super::registry::Registry;
use super::status::GranStatus;
use super::types::{backend, GranBackend, GranProcessGroup, GranProcessGroupConfig};
use crate::dist::{GroupSettings, ProcessGroup};
use crate::error::{Error, Result};
use std::time::Duration;

pub(crate) static GROUPS: Registry<ProcessGroup> = Registry::new("process group");

fn register(out: *mut GranProcessGroup, settings: &GroupSettings) -> Result<()> {
    // SAFETY: callers pass their `out` argument, documented as pointing to a GranProcessGroup.
    let out = unsafe { arg_mut(out, "out")? };
    *out = GROUPS.insert(ProcessGroup::new(settings)?);
    Ok(())
}

fn port(p: u32) -> Result<u16> {
    u16::try_from(p)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| Error::invalid(format!("master_port {p} is not in 1 ..= 65535")))
}

/// Fills `cfg` with the defaults: backend AUTO, rank 0 of 1, master 127.0.0.1:29500, local rank
/// 0, timeout 5 minutes, and `struct_size` set. Does nothing when `cfg` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` is NULL or points to a writable GranProcessGroupConfig.
#[no_mangle]
pub unsafe extern "C" fn gran_process_group_config_init(cfg: *mut GranProcessGroupConfig) {
    if !cfg.is_null() {
        cfg.write(GranProcessGroupConfig::defaults());
    }
}

/// Joins a process group of `cfg->world_size` processes as rank `cfg->rank`: rank 0 serves the
/// rendezvous at master_addr:master_port and every rank waits (at most `cfg->timeout_ms`) until
/// all have arrived. Every process of the group makes its own, then trains with it.
///
/// The call returns within `cfg->timeout_ms` plus 0.5 s whatever the peers do (absent, silent,
/// slow, answering garbage): past that it is DISTRIBUTED, and the abandoned attempt ends on a
/// thread of its own (its connection closes when the peer closes it). The first group made
/// raises libtorch's C++ log threshold to FATAL (unless the environment sets
/// TORCH_CPP_LOG_LEVEL), so that c10d's and its backends' messages stay off the host's stderr:
/// their failures reach the caller as statuses.
///
/// Errors: INVALID_ARGUMENT (NULL pointers, a rank not below the world size, a world size of 0
/// or above 4096, a port of 0 or above 65535, a timeout of 0 or above 24 h, an unknown
/// backend); DISTRIBUTED (the rendezvous timed out, the port is taken, a peer is unreachable
/// or answers nonsense, or the backend is not in this build).
///
/// Thread safety: any thread; it blocks until the group is complete or the time is up.
///
/// # Safety
/// `cfg` points to a GranProcessGroupConfig (at least `struct_size` bytes) whose `master_addr`
/// is NULL or a NUL-terminated string; `out` points to a GranProcessGroup.
#[no_mangle]
pub unsafe extern "C" fn gran_process_group_create(
    cfg: *const GranProcessGroupConfig,
    out: *mut GranProcessGroup,
) -> GranStatus {
    guard(|| {
        let c = read_versioned(cfg, "cfg")?;
        let addr = arg_opt_path(c.master_addr, "cfg->master_addr")?
            .map_or_else(|| "127.0.0.1".to_string(), |p| p.to_string_lossy().into_owned());
        let s = GroupSettings {
            backend: backend(c.backend, "cfg->backend")?,
            rank: c.rank,
            world_size: c.world_size,
            master_addr: addr,
            master_port: port(c.master_port)?,
            timeout: Duration::from_millis(c.timeout_ms),
            local_rank: c.local_rank,
            agent_attempt: None,
        };
        register(out, &s)
    })
}

/// Joins the process group that `torchrun` (or any launcher setting the same variables)
/// describes: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and LOCAL_RANK (0 when unset), so that
/// `torchrun --no-python --nproc-per-node=N ./program` runs a gran program on N processes.
/// `timeout_ms` as in GranProcessGroupConfig.
///
/// Errors: INVALID_ARGUMENT (a variable missing or not a number, or values as for
/// gran_process_group_create); DISTRIBUTED as for gran_process_group_create.
///
/// Thread safety: any thread; it blocks until the group is complete.
///
/// # Safety
/// `out` points to a GranProcessGroup.
#[no_mangle]
pub unsafe extern "C" fn gran_process_group_from_env(
    backend_kind: GranBackend,
    timeout_ms: u64,
    out: *mut GranProcessGroup,
) -> GranStatus {
    guard(|| {
        let s = GroupSettings::from_env(backend(backend_kind, "backend")?, Duration::from_millis(timeout_ms))?;
        register(out, &s)
    })
}

/// This process's rank in `g` (`rank`, may be NULL) and the group's size (`world_size`, may be
/// NULL). Errors: INVALID_HANDLE.
///
/// Thread safety: any thread.
///
/// # Safety
/// `rank` and `world_size` are NULL or point to writable uint32_t.
#[no_mangle]
pub unsafe extern "C" fn gran_process_group_info(
    g: GranProcessGroup,
    rank: *mut u32,
    world_size: *mut u32,
) -> GranStatus {
    guard(|| {
        let group = GROUPS.get(g)?;
        if !rank.is_null() {
            *rank = group.rank();
        }
        if !world_size.is_null() {
            *world_size = group.world_size();
        }
        Ok(())
    })
}

/// Frees a process group (leaving it: its connections close, and peers still using it fail
/// within their timeout). 0 is accepted and does nothing; a handle already freed is
/// INVALID_HANDLE. A training run using the group keeps it until the run ends.
///
/// Errors: INVALID_HANDLE.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_process_group_free(g: GranProcessGroup) -> GranStatus {
    guard(|| {
        if g != 0 {
            GROUPS.remove(g)?;
        }
        Ok(())
    })
}
