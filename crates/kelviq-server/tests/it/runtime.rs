//! `pin_workers`: each worker thread of `kelviq serve` bound to a CPU of
//! its own, read from the running process's `/proc`.

use crate::common::process::serve;

/// `0-2,5` → `[0, 1, 2, 5]` (the kernel's CPU list format).
fn expand(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

fn allowed(status: &str) -> Vec<usize> {
    expand(status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list"))
}

/// The CPUs each thread named `tokio-rt-worker` of process `pid` may run on
/// (tokio names its blocking threads the same).
fn worker_cpus(pid: u32) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        if std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim() != "tokio-rt-worker" {
            continue;
        }
        if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
            out.push(allowed(&status));
        }
    }
    out
}

#[test]
fn pinned_workers_run_each_on_a_cpu_of_its_own() {
    let mine = allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    if mine.len() < 2 {
        eprintln!("one CPU only: a pinned worker cannot be told from a free one here");
        return;
    }
    let workers = std::thread::available_parallelism().unwrap().get().min(mine.len());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();

    let pinned = serve(&[("KELVIQ_DATA_DIR", data), ("KELVIQ_PIN_WORKERS", "true")]);
    let threads = worker_cpus(pinned.child.id());
    let mut bound: Vec<usize> = threads.iter().filter(|c| c.len() == 1).map(|c| c[0]).collect();
    bound.sort_unstable();
    bound.dedup();
    assert_eq!(bound.len(), workers, "one worker on each CPU: {threads:?}");
    assert!(bound.iter().all(|c| mine.contains(c)), "only CPUs the process may use: {bound:?} of {mine:?}");
    assert!(threads.iter().filter(|c| c.len() != 1).all(|c| *c == mine), "blocking threads stay free: {threads:?}");
    drop(pinned);

    let free = serve(&[("KELVIQ_DATA_DIR", data)]);
    let threads = worker_cpus(free.child.id());
    assert!(threads.len() >= workers, "{threads:?}");
    assert!(threads.iter().all(|c| *c == mine), "off by default: {threads:?}");
}
