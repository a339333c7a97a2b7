//! Passwords: argon2id hashing and Django's four validators with the old service's messages.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use argon2_rust::params::Memory;
use argon2_rust::{Algorithm, Argon2, Hasher, Params, Version};

/// OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_PARALLELISM: u32 = 1;

pub const MIN_LENGTH: usize = 8;
pub const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
pub const TOO_COMMON: &str = "This password is too common.";
pub const ENTIRELY_NUMERIC: &str = "This password is entirely numeric.";

/// argon2id with our parameters. The implementation is `argon2-rust`: a port of the C reference
/// with SIMD kernels chosen at run time (AVX-512, AVX2, SSE2 on x86-64; NEON on arm64, where
/// Lambda runs), so the speed does not depend on the compiler vectorising our size-optimised,
/// LTO release build (which it does not: RustCrypto's `argon2` lost 1.5-2x there, see
/// docs/benchmarks.md). Bit-exact with the reference: PHC strings of either verify in the other.
fn argon2() -> Argon2 {
    let params = Params::builder()
        .memory(Memory::kib(ARGON2_MEMORY_KIB as u64))
        .passes(ARGON2_ITERATIONS)
        .lanes(ARGON2_PARALLELISM)
        .build()
        .expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The costliest stored hash we verify (imported Django hashes carry their own parameters; the
/// old service's were m = 100 MiB, t = 2, p = 8): a bound on what one login can cost. Lanes run
/// one after the other on the calling thread (no worker threads).
static VERIFY_CEILING: LazyLock<Params> = LazyLock::new(|| {
    Params::builder().memory(Memory::mib(128)).passes(10).lanes(16).threads(1).build().expect("valid ceiling")
});

/// Hashers with their 19 MiB of block memory, kept between hashes: at most one per CPU, as many
/// as `blocking` lets run at once. A hash that finds none makes one, and gives it back only if
/// the pool has room, so the memory held stays at (CPUs x 19 MiB) whoever calls. Allocating the
/// blocks afresh per hash kept them resident anyway (glibc arenas, one per blocking thread:
/// 1.2 GiB after the login benchmark) and paid the page faults each time.
static HASHERS: LazyLock<Mutex<Vec<Hasher>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// The CPUs this process may use (read once: on Linux it reads the cgroup's quota files).
fn cpus() -> usize {
    static CPUS: LazyLock<usize> = LazyLock::new(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    *CPUS
}

/// Runs `f` with a pooled hasher (our parameters), then returns the hasher to the pool.
fn with_hasher<T>(f: impl FnOnce(&mut Hasher) -> T) -> T {
    let taken = HASHERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut hasher = taken.unwrap_or_else(|| argon2().hasher());
    let result = f(&mut hasher);
    let mut pool = HASHERS.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < cpus() {
        pool.push(hasher);
    }
    result
}

/// A fresh argon2id PHC string for `password`. CPU-heavy: call it off the async runtime.
pub fn hash(password: &str) -> String {
    with_hasher(|hasher| hasher.hash_password_with_random_salt(password.as_bytes()))
        .expect("argon2 hashing with valid parameters and OS randomness cannot fail")
}

/// Whether `password` matches `stored`, in constant time for a given hash. A hash this service
/// cannot read never matches. `argon2$...` hashes imported from Django are read as well.
pub fn verify(password: &str, stored: &str) -> bool {
    if let Some(django) = stored.strip_prefix("pbkdf2_sha256$") {
        return verify_django_pbkdf2(password, django);
    }
    let phc = stored.strip_prefix("argon2").filter(|rest| rest.starts_with("$argon2")).unwrap_or(stored);
    let Some(algorithm) = phc_algorithm(phc) else { return false };
    // A hash with other parameters than ours runs on memory of its own, freed afterwards.
    with_hasher(|hasher| hasher.verify_encoded_bounded(phc, password.as_bytes(), algorithm, &VERIFY_CEILING)).is_ok()
}

/// The variant a PHC string names (`$argon2id$...`, `$argon2i$...`, `$argon2d$...`).
fn phc_algorithm(phc: &str) -> Option<Algorithm> {
    match phc.split('$').nth(1)? {
        "argon2id" => Some(Algorithm::Argon2id),
        "argon2i" => Some(Algorithm::Argon2i),
        "argon2d" => Some(Algorithm::Argon2d),
        _ => None,
    }
}

/// The most PBKDF2 rounds an imported hash may ask for (Django 5.2 uses 1 000 000): a bound on
/// what one login can cost.
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// Django's `PBKDF2PasswordHasher`: `<iterations>$<salt>$<base64 of the 32-byte derived key>`
/// (after the `pbkdf2_sha256$` prefix). The salt is used as its text, as Django does.
fn verify_django_pbkdf2(password: &str, encoded: &str) -> bool {
    use base64::Engine;
    use subtle::ConstantTimeEq;
    let mut parts = encoded.splitn(3, '$');
    let (Some(rounds), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let Ok(rounds) = rounds.parse::<u32>() else { return false };
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else { return false };
    if rounds == 0 || rounds > MAX_PBKDF2_ROUNDS || expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let Ok(params) = pbkdf2::Params::new(rounds) else { return false };
    let mut derived = vec![0u8; expected.len()];
    // The non-generic entry point: compiled (and optimised) inside the pbkdf2 crate.
    pbkdf2::pbkdf2_hmac_with_params(
        password.as_bytes(),
        salt.as_bytes(),
        pbkdf2::Algorithm::Pbkdf2Sha256,
        params,
        &mut derived,
    );
    derived.ct_eq(&expected).into()
}

/// Whether a stored hash should be replaced by a fresh one at the next successful login.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = argon2_rust::decode_phc(stored) else { return true };
    parsed.algorithm != Algorithm::Argon2id
        || parsed.params.memory_kib() < ARGON2_MEMORY_KIB
        || parsed.params.passes() < ARGON2_ITERATIONS
}

/// A hash that no password matches, with the same cost as a real one: logins for unknown users
/// verify against it so they take as long as a wrong password (no enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: LazyLock<String> = LazyLock::new(|| hash(&uuid::Uuid::new_v4().to_string()));
    &DUMMY
}

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("../../data/common-passwords.txt").lines().map(str::trim).collect());

/// The user attributes the similarity validator compares with (name, human label).
pub struct Attributes<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// Django's `MinimumLengthValidator`, `CommonPasswordValidator` and `NumericPasswordValidator`,
/// in settings order; every failing one adds its message.
pub fn field_problems(password: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if password.chars().count() < MIN_LENGTH {
        problems.push(TOO_SHORT);
    }
    if COMMON_PASSWORDS.contains(password.to_lowercase().trim()) {
        problems.push(TOO_COMMON);
    }
    if !password.is_empty() && password.chars().all(|c| c.is_numeric()) {
        problems.push(ENTIRELY_NUMERIC);
    }
    problems
}

/// Django's `UserAttributeSimilarityValidator` (max similarity 0.7): the message, if too similar.
pub fn similarity_problem(password: &str, user: &Attributes<'_>) -> Option<String> {
    const MAX_SIMILARITY: f64 = 0.7;
    let password = password.to_lowercase();
    let attributes = [
        (user.username, "username"),
        (user.first_name, "first name"),
        (user.last_name, "last name"),
        (user.email, "email address"),
    ];
    for (value, label) in attributes {
        if value.is_empty() {
            continue;
        }
        let value = value.to_lowercase();
        let mut parts: Vec<&str> =
            value.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|p| !p.is_empty()).collect();
        parts.push(&value);
        for part in parts {
            if exceeds_maximum_length_ratio(&password, MAX_SIMILARITY, part) {
                continue;
            }
            if quick_ratio(&password, part) >= MAX_SIMILARITY {
                return Some(format!("The password is too similar to the {label}."));
            }
        }
    }
    None
}

fn exceeds_maximum_length_ratio(password: &str, max_similarity: f64, value: &str) -> bool {
    let pwd_len = password.chars().count();
    let value_len = value.chars().count();
    let length_bound_similarity = max_similarity / 2.0 * pwd_len as f64;
    pwd_len >= 10 * value_len && (value_len as f64) < length_bound_similarity
}

/// `difflib.SequenceMatcher(a, b).quick_ratio()`: twice the multiset overlap over the total length.
fn quick_ratio(a: &str, b: &str) -> f64 {
    use std::collections::HashMap;
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: HashMap<char, i64> = HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0;
    for c in a.chars() {
        let n = available.entry(c).or_default();
        if *n > 0 {
            matches += 1;
        }
        *n -= 1;
    }
    2.0 * matches as f64 / total as f64
}

/// Password hashing admission: one hash per CPU runs, a bounded number wait, the rest are
/// refused at once (503). More running at once would not finish sooner, only hold more memory
/// (argon2id takes 19 MiB each); an unbounded queue let a flood of failed logins delay every
/// other user's login by seconds. Throttling counters are checked before a request gets here.
struct HashQueue {
    running: std::sync::Arc<tokio::sync::Semaphore>,
    admitted: std::sync::atomic::AtomicUsize,
    capacity: usize,
}

/// How many password checks may wait per CPU: a waiting login is served within about this many
/// hash durations (argon2id: ~50 ms on one Lambda vCPU). More than one address may fail per
/// minute (10 on 2 CPUs), so a flood from one address cannot fill the queue by itself.
const HASHES_WAITING_PER_CPU: usize = 8;

static HASHING: std::sync::LazyLock<HashQueue> = std::sync::LazyLock::new(|| {
    let cpus = cpus();
    HashQueue {
        running: std::sync::Arc::new(tokio::sync::Semaphore::new(cpus)),
        admitted: std::sync::atomic::AtomicUsize::new(0),
        capacity: cpus * (1 + HASHES_WAITING_PER_CPU),
    }
});

/// A place in the hash queue, given back on drop (also when the request is cancelled).
struct QueueTicket(&'static HashQueue);

impl Drop for QueueTicket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl HashQueue {
    fn admit(&'static self) -> crate::domain::Result<QueueTicket> {
        let before = self.admitted.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let ticket = QueueTicket(self);
        if before >= self.capacity {
            return Err(crate::error::Error::Overloaded);
        }
        Ok(ticket)
    }
}

/// Password hashing is CPU-bound: run it beside the async runtime, not on it, at most one per
/// CPU at a time, and refuse it when too many are waiting already.
///
/// The hash holds its place and its permit until it has finished, not until its request is
/// answered: a request cancelled mid-hash (a client that hangs up) leaves the hash running on
/// its blocking thread, and releasing the permit then let a new hash start beside it. Clients
/// that connect, send a login and hang up could run any number at once, 19 MiB each.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> crate::domain::Result<T> {
    let ticket = HASHING.admit()?;
    let permit = HASHING
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| crate::error::Error::Internal(format!("hashing queue closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let _held = (ticket, permit);
        f()
    })
    .await
    .map_err(|e| crate::error::Error::Internal(format!("blocking task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(username: &str) -> Attributes<'_> {
        Attributes { username, email: "", first_name: "", last_name: "" }
    }

    #[test]
    fn validators_match_the_contract() {
        assert_eq!(field_problems("short"), vec![TOO_SHORT]);
        assert_eq!(field_problems("password"), vec![TOO_COMMON]);
        assert_eq!(field_problems("QWERTY123"), vec![TOO_COMMON]);
        assert_eq!(field_problems("48261937"), vec![ENTIRELY_NUMERIC]);
        assert_eq!(field_problems("12345678"), vec![TOO_COMMON, ENTIRELY_NUMERIC]);
        assert_eq!(field_problems("123"), vec![TOO_SHORT, TOO_COMMON, ENTIRELY_NUMERIC]);
        assert!(field_problems("xk29!pLm#q").is_empty());
    }

    #[test]
    fn similarity_like_django() {
        assert_eq!(
            similarity_problem("probe3xyz", &attrs("probe3")).as_deref(),
            Some("The password is too similar to the username.")
        );
        assert_eq!(similarity_problem("xk29!pLm#q", &attrs("probe3")), None);
        let with_email = Attributes { username: "zz", email: "jordansmith@example.com", first_name: "", last_name: "" };
        assert_eq!(
            similarity_problem("JordanSmith1", &with_email).as_deref(),
            Some("The password is too similar to the email address.")
        );
        // A long password is not "similar" to a very short attribute.
        assert_eq!(similarity_problem("a-very-long-passphrase-indeed", &attrs("ab")), None);
    }

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
        assert!(!needs_rehash(&h));
        assert!(needs_rehash("pbkdf2_sha256$1000000$salt$hash"));
        assert!(!verify("anything", dummy_hash()));
        // The dummy costs what a real hash costs: same algorithm and parameters.
        assert_eq!(dummy_hash()[..31], h[..31]);
    }

    /// Made by Django 5.2 (`make_password("Tangerine-Kite-42")` with the default hasher).
    const DJANGO_PBKDF2: &str =
        "pbkdf2_sha256$1000000$DERZjTEXjTHXlqim6hqGhw$hHBW4l5G5p0u2r64xrK4rmF7Lo18EoVQep89FDsxPn4=";

    #[test]
    fn django_pbkdf2_hashes_verify_and_get_upgraded() {
        assert!(verify("Tangerine-Kite-42", DJANGO_PBKDF2));
        assert!(!verify("Tangerine-Kite-43", DJANGO_PBKDF2));
        assert!(!verify("", DJANGO_PBKDF2));
        assert!(needs_rehash(DJANGO_PBKDF2));
        // Malformed or abusive encodings never match (and never panic).
        for bad in [
            "pbkdf2_sha256$",
            "pbkdf2_sha256$x$salt$aGFzaA==",
            "pbkdf2_sha256$0$salt$aGFzaA==",
            "pbkdf2_sha256$4294967295$salt$aGFzaA==",
            "pbkdf2_sha256$1000$salt$not base64!",
            "pbkdf2_sha256$1000$salt$",
            "pbkdf2_sha256$1000$salt",
            "pbkdf2_sha1$1000$salt$aGFzaA==",
        ] {
            assert!(!verify("Tangerine-Kite-42", bad), "{bad}");
        }
    }

    /// Made by the C reference (argon2-cffi 25.1, `hash_secret(b"Correct-Horse-7",
    /// b"kat-salt-16bytes", 2, 19456, 1, 32, Type.ID)`, and `Type.I`).
    const REFERENCE_ARGON2ID: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$a2F0LXNhbHQtMTZieXRlcw$M5JCvq5Ky1aYH5RfcD2VQFdGbBRGICFINTwmrMz8080";
    const REFERENCE_ARGON2I: &str =
        "$argon2i$v=19$m=19456,t=2,p=1$a2F0LXNhbHQtMTZieXRlcw$zvMWmlB1UxqF11+Km/sJVKnbCJ6ji324v4whjAu60N4";
    /// Made by Django 5.2's `Argon2PasswordHasher` (the old service's variant: m = 100 MiB, p = 8).
    const DJANGO_ARGON2: &str =
        "argon2$argon2id$v=19$m=102400,t=2,p=8$cHhVcTN5U1RzR1FOTEF1SDVWZ2t4cQ$4ZwK5wRSXyXk0RjSgSIi8zE6BAH+HAS1Jkx+BEHAL+c";
    /// Made by this service before (RustCrypto's `argon2` 0.5, random salt): stored hashes stay valid.
    const RUSTCRYPTO_ARGON2ID: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$Mdx8JXfSkxfiNVp02Kr7YA$6qn9hL9WD5Ks0Klrk4hEcEyQyYIfC0uIKe+QAxISN6g";

    /// Known answers both ways: what the C reference, Django and our previous implementation
    /// wrote verifies here, and with the reference's salt we write the reference's string byte for
    /// byte (so argon2-cffi and Django accept ours; bench/run also checks that live).
    #[test]
    fn hashes_verify_both_ways_with_the_c_reference_and_django() {
        assert!(verify("Correct-Horse-7", REFERENCE_ARGON2ID));
        assert!(!verify("Correct-Horse-8", REFERENCE_ARGON2ID));
        assert!(verify("Correct-Horse-7", REFERENCE_ARGON2I));
        assert!(!verify("Correct-Horse-8", REFERENCE_ARGON2I));
        assert!(verify("Violet-Harbor-31", DJANGO_ARGON2));
        assert!(!verify("Violet-Harbor-32", DJANGO_ARGON2));
        assert!(verify("Amber-Quill-58", RUSTCRYPTO_ARGON2ID));
        assert!(!verify("Amber-Quill-59", RUSTCRYPTO_ARGON2ID));
        let ours = argon2().hash_password(b"Correct-Horse-7", b"kat-salt-16bytes").unwrap();
        assert_eq!(ours, REFERENCE_ARGON2ID);
        assert!(needs_rehash(REFERENCE_ARGON2I));
        assert!(!needs_rehash(&DJANGO_ARGON2["argon2".len()..]), "m = 100 MiB, t = 2 is no weaker");
    }

    /// Stored strings chosen to cost too much are refused before any memory is taken.
    #[test]
    fn hashes_costlier_than_the_ceiling_never_match() {
        for hostile in [
            "$argon2id$v=19$m=4194304,t=2,p=1$a2F0LXNhbHQtMTZieXRlcw$M5JCvq5Ky1aYH5RfcD2VQFdGbBRGICFINTwmrMz8080",
            "$argon2id$v=19$m=19456,t=1000,p=1$a2F0LXNhbHQtMTZieXRlcw$M5JCvq5Ky1aYH5RfcD2VQFdGbBRGICFINTwmrMz8080",
            "$argon2id$v=19$m=19456,t=2,p=255$a2F0LXNhbHQtMTZieXRlcw$M5JCvq5Ky1aYH5RfcD2VQFdGbBRGICFINTwmrMz8080",
            "$argon2x$v=19$m=19456,t=2,p=1$a2F0LXNhbHQtMTZieXRlcw$M5JCvq5Ky1aYH5RfcD2VQFdGbBRGICFINTwmrMz8080",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
        ] {
            assert!(!verify("Correct-Horse-7", hostile), "{hostile}");
        }
    }

    /// The pool keeps at most one hasher per CPU, whatever number of threads hashed at once.
    #[test]
    fn hasher_pool_is_bounded_by_the_cpus() {
        let threads: Vec<_> = (0..cpus() * 3).map(|i| std::thread::spawn(move || hash(&format!("pw-{i}")))).collect();
        for thread in threads {
            assert!(thread.join().unwrap().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        }
        let pooled = HASHERS.lock().unwrap().len();
        assert!((1..=cpus()).contains(&pooled), "{pooled} hashers kept on {} CPUs", cpus());
    }

    #[test]
    fn django_argon2_prefix_is_understood() {
        let h = hash("imported pw");
        assert!(verify("imported pw", &format!("argon2{h}")));
    }

    /// A burst of hashes runs at most one per CPU at a time, and every one of them runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashes_run_at_most_one_per_cpu() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::Duration;

        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..cpus * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            task.await.unwrap().unwrap();
            done += 1;
        }
        assert_eq!(done, cpus * 4);
        let most = most.load(Ordering::SeqCst);
        assert!(most <= cpus, "{most} hashes ran at once on {cpus} CPUs");
        assert!(most >= 1);
    }

    /// Requests cancelled mid-hash, in waves as clients that send a login and hang up: the
    /// cancelled hashes keep running, and new ones must wait for them (the bound is on hashes,
    /// not on requests). Each wave's requests are dropped once their hashes have started.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_requests_do_not_free_their_hash_slot_early() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::Duration;

        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        for _wave in 0..4 {
            let tasks: Vec<_> = (0..cpus)
                .map(|_| {
                    let (running, most) = (running.clone(), most.clone());
                    tokio::spawn(blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(60));
                        running.fetch_sub(1, Ordering::SeqCst);
                    }))
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(15)).await;
            for task in tasks {
                task.abort();
            }
        }
        while running.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= cpus, "{most} hashes ran at once on {cpus} CPUs after cancelled requests");
    }
}
