//! The monitor's drift actions on a running container: kill it whole, or freeze it.
//!
//! Killing the container's init is not always killing the container:
//! 1. When init is the init of its own PID namespace (runc, crun, containerd, podman by
//!    default), SIGKILL to it through its pidfd is enough: "if the init process of a PID
//!    namespace terminates, the kernel terminates all of the processes in the namespace via a
//!    SIGKILL signal" (pid_namespaces(7)). `runc exec` processes are in that namespace too.
//! 2. When it shares a PID namespace (the host's, or a pod's with a shared process namespace),
//!    its other processes survive it. They are found by its cgroup: cgroup v2 `cgroup.kill`
//!    when the container has a v2 cgroup of its own, else the v1 freezer cgroup is frozen (a
//!    frozen process cannot fork or exit, so the pids read from `cgroup.procs` stay theirs),
//!    each process is sent SIGKILL, and the cgroup is thawed, which lets them die.
//!
//! A cgroup that is the root of its hierarchy or also holds the monitor is never used: that
//! would kill more than the container.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a container could not be killed or frozen (the event says "kill failed: ..." or
/// "freeze failed: ...").
#[derive(Debug, thiserror::Error)]
pub enum ContainmentError {
    #[error("pid {pid}: {error}")]
    Status { pid: i32, error: std::io::Error },
    #[error("SIGKILL to pid {pid}: {error}")]
    Signal { pid: i32, error: std::io::Error },
    /// Killing the cgroup would kill more than the container.
    #[error(
        "its cgroup {cgroup} is the root or also holds the monitor; killing it would kill more than the container"
    )]
    SharedCgroup { cgroup: String },
    #[error("{}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{SHARED_PID_NS} and it has no cgroup of its own to find its processes by")]
    NoCgroup { pid: i32 },
    #[error("{} did not reach FROZEN within 5 s", path.display())]
    NotFrozen { path: PathBuf },
    #[error("no cgroup freezer for this process")]
    NoFreezer { pid: i32 },
}

const SHARED_PID_NS: &str = "the container shares its PID namespace";

/// How a container is killed (decided from facts about its init, [`plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPlan {
    /// SIGKILL to init: the kernel ends its PID namespace.
    Init,
    /// Every process of its cgroup.
    Cgroup,
}

/// `nspid`: the NSpid line of /proc/PID/status (the pid in each namespace, outermost first);
/// `shares_ours`: its PID namespace is the monitor's.
pub fn plan(nspid: &str, shares_ours: bool) -> KillPlan {
    let innermost = nspid.split_whitespace().last();
    if !shares_ours && innermost == Some("1") {
        KillPlan::Init
    } else {
        KillPlan::Cgroup
    }
}

/// Kills every process of the container whose init is `pid` (held by `pidfd`). Returns what
/// was done, for the event.
pub fn kill(pidfd: BorrowedFd<'_>, pid: i32) -> Result<String, ContainmentError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| ContainmentError::Status { pid, error })?;
    let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap_or("");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let shares_ours = ns(&pid.to_string()).is_none_or(|n| Some(n) == ns("self"));
    match plan(nspid, shares_ours) {
        KillPlan::Init => {
            crate::sys::pidfd_send_signal(pidfd, libc::SIGKILL)
                .map_err(|error| ContainmentError::Signal { pid, error })?;
            Ok(format!(
                "killed: SIGKILL sent to the container's init (pid {pid}) through its pidfd; as the init of its PID namespace, the kernel ends every process in it"
            ))
        }
        KillPlan::Cgroup => kill_cgroup(pidfd, pid),
    }
}

/// One line of /proc/PID/cgroup: (hierarchy id, controllers, path).
fn cgroups(pid: &str) -> Vec<(String, String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            Some((p.next()?.to_string(), p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

/// Where a cgroup hierarchy is mounted: `v2` for cgroup2, else the v1 controller's name.
fn mount_of(controller: Option<&str>) -> Option<PathBuf> {
    crate::node::mountinfo::read().unwrap_or_default().into_iter().find_map(|m| {
        let ok = match controller {
            None => m.fstype == "cgroup2",
            Some(c) => m.fstype == "cgroup" && m.super_option_pairs().any(|(k, _)| k == c),
        };
        ok.then_some(m.mount_point)
    })
}

/// The container's cgroup directory in one hierarchy (v2 when `controller` is None), unless
/// it is the root or the monitor's own.
fn own_cgroup(pid: i32, controller: Option<&str>) -> Result<Option<PathBuf>, ContainmentError> {
    let pick = |lines: Vec<(String, String, String)>| {
        lines.into_iter().find_map(|(h, c, p)| match controller {
            None => (h == "0" && c.is_empty()).then_some(p),
            Some(want) => c.split(',').any(|x| x == want).then_some(p),
        })
    };
    let Some(path) = pick(cgroups(&pid.to_string())) else { return Ok(None) };
    let Some(mount) = mount_of(controller) else { return Ok(None) };
    if path == "/" || Some(&path) == pick(cgroups("self")).as_ref() {
        return Err(ContainmentError::SharedCgroup { cgroup: path });
    }
    Ok(Some(mount.join(path.trim_start_matches('/'))))
}

/// Writes `value` to a cgroup file.
fn set(path: &std::path::Path, value: &str) -> Result<(), ContainmentError> {
    std::fs::write(path, value).map_err(|error| ContainmentError::Write { path: path.into(), error })
}

fn kill_cgroup(pidfd: BorrowedFd<'_>, pid: i32) -> Result<String, ContainmentError> {
    if let Some(dir) = own_cgroup(pid, None)? {
        let f = dir.join("cgroup.kill");
        if f.exists() {
            set(&f, "1")?;
            return Ok(format!(
                "killed: {SHARED_PID_NS}, so every process of its cgroup was killed ({} set)",
                f.display()
            ));
        }
    }
    let dir = own_cgroup(pid, Some("freezer"))?.ok_or(ContainmentError::NoCgroup { pid })?;
    let state = dir.join("freezer.state");
    let write = |v: &str| set(&state, v);
    write("FROZEN")?;
    let end = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&state).unwrap_or_default().trim() != "FROZEN" {
        if Instant::now() > end {
            let _ = write("THAWED");
            return Err(ContainmentError::NotFrozen { path: state });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let mut n = 0;
    for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // Frozen: the pid cannot exit and be reused before the signal lands. init through its
        // pidfd, the others by pid.
        let r = if p == pid {
            crate::sys::pidfd_send_signal(pidfd, libc::SIGKILL)
        } else {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        };
        if r.is_ok() {
            n += 1;
        }
    }
    write("THAWED")?;
    Ok(format!(
        "killed: {SHARED_PID_NS}, so its {n} process(es) in freezer cgroup {} were frozen, sent SIGKILL and thawed",
        dir.display()
    ))
}

/// Freezes the cgroup of `pid` (cgroup v2 `cgroup.freeze`, else the v1 freezer).
pub fn freeze(pid: i32) -> Result<PathBuf, ContainmentError> {
    if let Some(dir) = own_cgroup(pid, Some("freezer"))? {
        let f = dir.join("freezer.state");
        set(&f, "FROZEN")?;
        return Ok(f);
    }
    if let Some(dir) = own_cgroup(pid, None)? {
        let f = dir.join("cgroup.freeze");
        set(&f, "1")?;
        return Ok(f);
    }
    Err(ContainmentError::NoFreezer { pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_kills_init_only_when_it_ends_its_namespace() {
        assert_eq!(plan("4242\t1", false), KillPlan::Init);
        assert_eq!(plan("4242\t7", false), KillPlan::Cgroup, "not the namespace's init");
        assert_eq!(plan("4242", true), KillPlan::Cgroup, "the monitor's own namespace");
        assert_eq!(plan("1", true), KillPlan::Cgroup, "the host's init is never the plan");
        assert_eq!(plan("", false), KillPlan::Cgroup);
    }

    #[test]
    fn the_monitors_own_cgroup_is_never_a_target() {
        let me = std::process::id() as i32;
        for c in [None, Some("freezer")] {
            assert!(!matches!(own_cgroup(me, c), Ok(Some(_))), "{c:?}");
        }
    }
}
