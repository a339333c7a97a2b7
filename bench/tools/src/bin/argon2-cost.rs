//! The cost of one password hash as the service computes it (release build), next to RustCrypto's
//! `argon2` at the same parameters, as one JSON line:   argon2-cost RUNS
//! Each run hashes once and verifies once, on one thread, as a login or registration does.
//! bench/run alternates this with `bench/argon2_reference.py` (the C reference, argon2-cffi) so
//! both see the same machine, and hands it a PHC string of the reference to verify (`REFERENCE_PHC`
//! and `REFERENCE_PASSWORD`): the hashes must verify both ways.

use std::time::Instant;

use accounts::domain::password::{self, ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM};
use anyhow::{ensure, Context};
use serde_json::json;

/// CPU time of the calling thread, in ms (`CLOCK_THREAD_CPUTIME_ID`: exact, where
/// `/proc/thread-self/schedstat` moves in scheduler ticks on some kernels). Other load on the
/// machine disturbs it less than wall time; p = 1 hashes on this thread.
fn thread_cpu_ms() -> f64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return f64::NAN;
    }
    now.tv_sec as f64 * 1e3 + now.tv_nsec as f64 / 1e6
}

/// Wall and CPU ms of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (started, started_cpu) = (Instant::now(), thread_cpu_ms());
    let value = f();
    (value, started.elapsed().as_secs_f64() * 1000.0, thread_cpu_ms() - started_cpu)
}

/// RustCrypto's `argon2` (what the service used before), at our parameters, on block memory
/// reused between runs, as its fastest use is.
fn rustcrypto_hash(password: &[u8], salt: &[u8], blocks: &mut [argon2::Block]) -> [u8; 32] {
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_PARALLELISM, Some(32))
        .expect("valid parameters");
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into_with_memory(password, salt, &mut out, blocks)
        .expect("argon2 hashing with valid parameters");
    out
}

/// The raw tag of a PHC string (its last field), decoded.
fn phc_tag(phc: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let tag = phc.rsplit('$').next().context("a PHC string")?;
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.decode(tag)?)
}

fn phc_salt(phc: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let salt = phc.rsplit('$').nth(1).context("a PHC string")?;
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.decode(salt)?)
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).unwrap_or_else(|| "7".into()).parse().context("RUNS is a number")?;
    let mut ours = (Vec::new(), Vec::new(), Vec::new()); // hash wall, hash cpu, verify wall
    let mut theirs = (Vec::new(), Vec::new());
    let mut blocks = vec![argon2::Block::default(); ARGON2_MEMORY_KIB as usize];
    // Warm-up, not measured: the pooled block memory and the RustCrypto blocks touched once.
    let _ = password::hash("warm-up");
    let _ = rustcrypto_hash(b"warm-up", b"warm-up-salt-16b", &mut blocks);
    for run in 0..runs.max(1) {
        let secret = format!("bench-password-{run}");
        let (stored, wall, cpu) = timed(|| password::hash(&secret));
        ours.0.push(wall);
        ours.1.push(cpu);
        let (matched, wall, _) = timed(|| password::verify(&secret, &stored));
        ensure!(matched, "our own hash does not verify");
        ours.2.push(wall);
        // The same password and salt through RustCrypto: the same tag, bit for bit.
        let salt = phc_salt(&stored)?;
        let (tag, wall, cpu) = timed(|| rustcrypto_hash(secret.as_bytes(), &salt, &mut blocks));
        ensure!(tag.as_slice() == phc_tag(&stored)?, "RustCrypto's argon2 disagrees with ours on {stored}");
        theirs.0.push(wall);
        theirs.1.push(cpu);
    }
    // A hash of the C reference (argon2-cffi), when bench/run hands one over: ours must accept it.
    let reference_verified = match (std::env::var("REFERENCE_PHC"), std::env::var("REFERENCE_PASSWORD")) {
        (Ok(phc), Ok(secret)) => Some(password::verify(&secret, &phc) && !password::verify("wrong", &phc)),
        _ => None,
    };
    let example = password::hash("example");
    println!(
        "{}",
        serde_json::to_string(&json!({
            "algorithm": "argon2id",
            "memory_kib": ARGON2_MEMORY_KIB,
            "iterations": ARGON2_ITERATIONS,
            "parallelism": ARGON2_PARALLELISM,
            "implementation": format!("argon2-rust ({:?} kernel)", argon2_rust::detected_backend()),
            "example_phc": example,
            "hash_ms": ours.0,
            "hash_cpu_ms": ours.1,
            "verify_ms": ours.2,
            "rustcrypto_hash_ms": theirs.0,
            "rustcrypto_hash_cpu_ms": theirs.1,
            "reference_phc_verified": reference_verified,
        }))?
    );
    Ok(())
}
