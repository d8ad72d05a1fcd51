//! How many worker arbiters an agent runs: the container's CPU quota (cgroup v2 `cpu.max`, or
//! cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) rounded up, never more than the cores the
//! process may use, at least 1; the number of cores when there is no quota.
//!
//! Owns reading and parsing the cgroup files. Does not own starting arbiters, nor the
//! `--workers` override (that is `config`, which calls [`default_workers`] only when unset).

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Parses cgroup v2 `cpu.max` (`"max 100000"` or `"200000 100000"`) into a CPU count, rounded
/// up. None when unlimited or unreadable.
pub fn parse_cgroup_v2_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    if quota == "max" {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    // The period is optional in the file format; the kernel default is 100 ms.
    let period: u64 = match fields.next() {
        Some(p) => p.parse().ok()?,
        None => 100_000,
    };
    cpus(quota, period)
}

/// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` into a CPU count, rounded up.
/// None when unlimited (`-1`) or unreadable.
pub fn parse_cgroup_v1(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    let quota = u64::try_from(quota).ok()?;
    cpus(quota, period)
}

fn cpus(quota: u64, period: u64) -> Option<usize> {
    if quota == 0 || period == 0 {
        return None;
    }
    usize::try_from(quota.div_ceil(period))
        .ok()
        .map(|n| n.max(1))
}

/// The process's cgroup v2 path from `/proc/self/cgroup` (`0::/some/path`).
fn own_cgroup_v2_path(proc_self_cgroup: &str) -> Option<PathBuf> {
    proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| PathBuf::from(path.trim().trim_start_matches('/')))
}

/// The CPU quota of this process's cgroup, if any, looking at the process's own cgroup (and its
/// ancestors, the tightest wins) and at the namespace root, v2 then v1.
pub fn cgroup_cpu_limit() -> Option<usize> {
    cgroup_cpu_limit_at(
        Path::new(CGROUP_ROOT),
        std::fs::read_to_string("/proc/self/cgroup").ok(),
    )
}

fn cgroup_cpu_limit_at(root: &Path, proc_self_cgroup: Option<String>) -> Option<usize> {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let mut limits = Vec::new();
    if let Some(own) = proc_self_cgroup.as_deref().and_then(own_cgroup_v2_path) {
        let mut dir = root.join(&own);
        while dir.starts_with(root) && dir != root {
            if let Some(limit) = read(dir.join("cpu.max"))
                .as_deref()
                .and_then(parse_cgroup_v2_cpu_max)
            {
                limits.push(limit);
            }
            if !dir.pop() {
                break;
            }
        }
    }
    if let Some(limit) = read(root.join("cpu.max"))
        .as_deref()
        .and_then(parse_cgroup_v2_cpu_max)
    {
        limits.push(limit);
    }
    if limits.is_empty() {
        for dir in [
            root.join("cpu"),
            root.join("cpu,cpuacct"),
            root.to_path_buf(),
        ] {
            let (Some(quota), Some(period)) = (
                read(dir.join("cpu.cfs_quota_us")),
                read(dir.join("cpu.cfs_period_us")),
            ) else {
                continue;
            };
            if let Some(limit) = parse_cgroup_v1(&quota, &period) {
                limits.push(limit);
                break;
            }
        }
    }
    limits.into_iter().min()
}

/// Cores this process may run on (affinity-aware), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Combines a cgroup quota and the available cores: the quota bounded by the cores, else the
/// cores; at least 1.
pub fn workers_from(quota: Option<usize>, cores: usize) -> usize {
    let cores = cores.max(1);
    quota.map_or(cores, |q| q.clamp(1, cores))
}

/// The worker count to use when `--workers` is not set.
pub fn default_workers() -> usize {
    workers_from(cgroup_cpu_limit(), available_cores())
}

/// The worker count: the configured one if any, else [`default_workers`].
pub fn workers(configured: Option<usize>) -> usize {
    configured
        .filter(|n| *n > 0)
        .unwrap_or_else(default_workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2() {
        assert_eq!(parse_cgroup_v2_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cgroup_v2_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cgroup_v2_cpu_max("150000 100000"), Some(2));
        assert_eq!(parse_cgroup_v2_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cgroup_v2_cpu_max("100000"), Some(1));
        assert_eq!(parse_cgroup_v2_cpu_max(""), None);
        assert_eq!(parse_cgroup_v2_cpu_max("abc 100000"), None);
        assert_eq!(parse_cgroup_v2_cpu_max("100000 0"), None);
    }

    #[test]
    fn v1() {
        assert_eq!(parse_cgroup_v1("-1\n", "100000\n"), None);
        assert_eq!(parse_cgroup_v1("400000", "100000"), Some(4));
        assert_eq!(parse_cgroup_v1("250000", "100000"), Some(3));
        assert_eq!(parse_cgroup_v1("x", "100000"), None);
    }

    #[test]
    fn combine() {
        assert_eq!(workers_from(None, 8), 8);
        assert_eq!(workers_from(Some(2), 8), 2);
        assert_eq!(workers_from(Some(16), 8), 8);
        assert_eq!(workers_from(None, 0), 1);
        assert_eq!(workers(Some(3)), 3);
        assert!(workers(None) >= 1);
        assert!(default_workers() >= 1);
    }

    #[test]
    fn reads_files_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("kubepods/pod1");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(root.path().join("cpu.max"), "max 100000\n").unwrap();
        std::fs::write(own.join("cpu.max"), "300000 100000\n").unwrap();
        std::fs::write(root.path().join("kubepods/cpu.max"), "500000 100000\n").unwrap();
        let limit = cgroup_cpu_limit_at(root.path(), Some("0::/kubepods/pod1\n".to_owned()));
        assert_eq!(limit, Some(3));

        let v1 = tempfile::tempdir().unwrap();
        let cpu = v1.path().join("cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("cpu.cfs_quota_us"), "200000\n").unwrap();
        std::fs::write(cpu.join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(cgroup_cpu_limit_at(v1.path(), None), Some(2));

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_cpu_limit_at(empty.path(), None), None);
    }
}
