//! The process-wide bound on image work (decoding, scaling, encoding avatars): at most one job per
//! CPU, and at most [`MEMORY_BUDGET`] of estimated peak memory among the jobs running
//! ([`super::picture::cost`]). Unbounded, six 7000×7000 PNGs uploaded at once took the local server
//! to 1.56 GB. Jobs wait here in arrival order, for [`MAX_WAIT`] at most: then the request gets a
//! 503 (retry later) instead of piling up.

use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The memory the image jobs of one process may hold at once. A job costing more (the largest
/// images the limits accept, about 300 MB) runs alone.
pub const MEMORY_BUDGET: u64 = 384 * MIB;
/// How long a job waits for its turn before the request is answered 503.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

const MIB: u64 = 1024 * 1024;

/// Concurrency and memory permits for image jobs.
pub struct ImageGate {
    cpus: Semaphore,
    memory: Semaphore,
    budget_mib: u32,
}

/// A job's place; dropping it lets the next ones in.
pub struct ImagePermit<'a> {
    _memory: SemaphorePermit<'a>,
    _cpu: SemaphorePermit<'a>,
}

impl ImageGate {
    pub fn new(cpus: usize, budget: u64) -> Self {
        let budget_mib = u32::try_from(budget / MIB).unwrap_or(u32::MAX).max(1);
        Self { cpus: Semaphore::new(cpus.max(1)), memory: Semaphore::new(budget_mib as usize), budget_mib }
    }

    /// Waits until a job costing `cost` bytes may run (a cost over the budget counts as the whole
    /// budget); `None` after `wait`.
    pub async fn enter(&self, cost: u64, wait: Duration) -> Option<ImagePermit<'_>> {
        let mib = u32::try_from(cost.div_ceil(MIB)).unwrap_or(u32::MAX).clamp(1, self.budget_mib);
        tokio::time::timeout(wait, async {
            // Memory first, then a CPU, always in this order: no two jobs hold one and wait for the other.
            let memory = self.memory.acquire_many(mib).await.ok()?;
            let cpu = self.cpus.acquire().await.ok()?;
            Some(ImagePermit { _memory: memory, _cpu: cpu })
        })
        .await
        .ok()
        .flatten()
    }

    /// Runs `f` (a job costing `cost`) on the blocking pool once it may run; `None` when no turn
    /// came within `wait`. The job holds its place until `f` returns, not until its request is
    /// answered: a request cancelled mid-job (a client that hangs up) leaves `f` running, and
    /// letting the next job in then would let uploads that hang up decode any number at once.
    pub async fn run<T: Send + 'static>(
        &'static self,
        cost: u64,
        wait: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<Result<T, tokio::task::JoinError>> {
        let permit = self.enter(cost, wait).await?;
        Some(
            tokio::task::spawn_blocking(move || {
                let _held = permit;
                f()
            })
            .await,
        )
    }
}

/// The gate of this process: one job per CPU within [`MEMORY_BUDGET`].
pub fn images() -> &'static ImageGate {
    static GATE: LazyLock<ImageGate> =
        LazyLock::new(|| ImageGate::new(std::thread::available_parallelism().map_or(2, |n| n.get()), MEMORY_BUDGET));
    &GATE
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A burst of jobs: never more than the CPUs at once nor more than the budget, and every job
    /// runs, the oversized one alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_runs_within_the_cpus_and_the_memory_budget() {
        let gate = Arc::new(ImageGate::new(3, 100 * MIB));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (held, most_held) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let costs: Vec<u64> = (0..24).map(|i| if i == 7 { 500 * MIB } else { (10 + (i % 4) * 15) * MIB }).collect();
        let tasks: Vec<_> = costs
            .into_iter()
            .map(|cost| {
                let (gate, running, most, held, most_held) =
                    (gate.clone(), running.clone(), most.clone(), held.clone(), most_held.clone());
                tokio::spawn(async move {
                    let _permit = gate.enter(cost, Duration::from_secs(30)).await.expect("a turn within the wait");
                    let charged = cost.min(100 * MIB);
                    most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    most_held.fetch_max(held.fetch_add(charged, Ordering::SeqCst) + charged, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    held.fetch_sub(charged, Ordering::SeqCst);
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 3, "{} jobs at once", most.load(Ordering::SeqCst));
        assert!(most_held.load(Ordering::SeqCst) <= 100 * MIB, "{} bytes at once", most_held.load(Ordering::SeqCst));
    }

    /// Waves of jobs whose requests are cancelled mid-job, as uploads that hang up: the cancelled
    /// jobs keep running, and the next ones wait for them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_requests_keep_their_place_until_their_job_ends() {
        static GATE: LazyLock<ImageGate> = LazyLock::new(|| ImageGate::new(2, 100 * MIB));
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        for _wave in 0..4 {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    tokio::spawn(GATE.run(10 * MIB, MAX_WAIT, || {
                        MOST.fetch_max(RUNNING.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(60));
                        RUNNING.fetch_sub(1, Ordering::SeqCst);
                    }))
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(15)).await;
            for task in tasks {
                task.abort();
            }
        }
        while RUNNING.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let most = MOST.load(Ordering::SeqCst);
        assert!(most <= 2, "{most} image jobs at once on a gate of 2 after cancelled requests");
    }

    #[tokio::test]
    async fn a_job_that_cannot_get_in_in_time_is_told_so() {
        let gate = ImageGate::new(1, 10 * MIB);
        let _running = gate.enter(MIB, MAX_WAIT).await.unwrap();
        assert!(gate.enter(MIB, Duration::from_millis(50)).await.is_none());
    }
}
