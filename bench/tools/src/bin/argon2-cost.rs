//! The cost of one password hash as the service computes it (release build), with its
//! parameters, as JSON:   argon2-cost RUNS
//! Each run hashes once and verifies once, on one thread, as a login or registration does.

use std::time::Instant;

use accounts::domain::password::{self, ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM};
use anyhow::Context;
use serde_json::json;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// CPU time of the calling thread so far (Linux: `/proc/thread-self/schedstat`, in ns), which
/// other load on the machine disturbs less than wall time. Hashing with p = 1 runs on this thread.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).unwrap_or_else(|| "7".into()).parse().context("RUNS is a number")?;
    let (mut hashes, mut verifies, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs.max(1) {
        let secret = format!("bench-password-{run}");
        let (started, started_cpu) = (Instant::now(), thread_cpu_ms());
        let stored = password::hash(&secret);
        hashes.push(started.elapsed().as_secs_f64() * 1000.0);
        cpu.push(thread_cpu_ms() - started_cpu);
        let started = Instant::now();
        assert!(password::verify(&secret, &stored));
        verifies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let example = password::hash("example");
    let params = example.split('$').nth(3).unwrap_or_default().to_string();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "algorithm": "argon2id",
            "memory_kib": ARGON2_MEMORY_KIB,
            "iterations": ARGON2_ITERATIONS,
            "parallelism": ARGON2_PARALLELISM,
            "phc_params": params,
            "runs": runs,
            "hash_ms_median": median(hashes),
            "hash_cpu_ms_median": median(cpu),
            "verify_ms_median": median(verifies),
        }))?
    );
    Ok(())
}
