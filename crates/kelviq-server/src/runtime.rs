//! The server's runtime: tokio's multi-threaded scheduler, one worker per
//! CPU the process may use, each bound to its CPU when `pin_workers` is on.
//!
//! Why pin: with another busy thread on the machine (a load generator, a
//! database), the kernel can leave both of two busy workers on one CPU for
//! several scheduler ticks while the other CPU runs that thread; every
//! request on the waiting worker then waits 4–8 ms. `perf sched timehist`
//! showed exactly that under the license validation benchmark, and pinning
//! took its p99 from 4.4 ms to 1.6 ms (docs/benchmarks.md, 2026-12-08).

use crate::config::Config;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Builds the runtime the server runs on.
pub fn build(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let cpus = if config.pin_workers { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    if config.pin_workers && cpus.is_empty() {
        tracing::warn!("pin_workers: the CPUs this process may use could not be read; the workers are not bound");
    }
    if !cpus.is_empty() {
        let workers = std::thread::available_parallelism().map_or(cpus.len(), |n| n.get()).min(cpus.len());
        builder.worker_threads(workers);
        // Tokio starts its workers, and only them, while the runtime is
        // built: the first `workers` threads started are the workers. Later
        // threads (blocking work) are left free.
        let ids: Vec<usize> = cpus[..workers].iter().map(|c| c.id).collect();
        tracing::info!(workers, cpus = ?ids, "binding each worker thread to its CPU");
        let started = Arc::new(AtomicUsize::new(0));
        builder.on_thread_start(move || {
            let n = started.fetch_add(1, Ordering::Relaxed);
            if n < workers && !core_affinity::set_for_current(cpus[n]) {
                tracing::warn!(worker = n, cpu = cpus[n].id, "could not bind a worker thread to its CPU");
            }
        });
    }
    builder.build()
}
