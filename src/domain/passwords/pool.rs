//! The hashing threads: a few of their own, at a lower priority, behind a bounded queue.
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{Semaphore, oneshot};

use super::DomainError;

type Job = Box<dyn FnOnce() + Send>;

/// Runs CPU-heavy jobs off the async executor: at most `workers` at once, at most `queue` more
/// waiting; beyond that a job is refused at once, so memory stays bounded under a login flood.
///
/// The threads are the pool's own rather than tokio's blocking ones, so that they alone can be
/// niced: under a login storm the request threads (and the database) go first and a verify
/// keeps its latency, while hashing gets every cycle nobody else wants.
#[derive(Clone)]
pub struct BlockingPool {
    places: Places,
    jobs: mpsc::Sender<Job>,
}

/// The places of running and waiting jobs: `workers + queue` permits in all.
#[derive(Clone)]
struct Places {
    admitted: Arc<Semaphore>,
    capacity: usize,
}

impl Places {
    fn in_flight(&self) -> usize {
        self.capacity - self.admitted.available_permits()
    }

    /// Sets the in-flight gauge: when a job is admitted and when it ends (its request may be
    /// gone by then), so an idle pool reads 0, not its last busy value.
    fn record(&self) {
        metrics::gauge!("tessera_password_hashing_in_flight").set(self.in_flight() as f64);
    }
}

impl BlockingPool {
    /// The pool and its threads; a thread that cannot be started stops the start (jobs would
    /// wait for it forever).
    pub fn new(workers: usize, queue: usize, nice: i32) -> Result<Self, DomainError> {
        let workers = workers.max(1);
        let (jobs, waiting) = mpsc::channel::<Job>();
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..workers {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-hash-{n}"))
                .spawn(move || {
                    lower_priority(nice);
                    // Ends when the pool (every sender) is dropped.
                    loop {
                        // A poisoned lock guards a receiver all the same.
                        let job = waiting
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(job) = job else { return };
                        // A job that panics drops its answer (an error for its request), not
                        // the thread: a pool that lost its threads would hang every login.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            spawned.map_err(|e| DomainError::Internal(format!("hashing thread: {e}")))?;
        }
        Ok(Self {
            // The jobs a thread runs count too.
            places: Places {
                admitted: Arc::new(Semaphore::new(workers + queue)),
                capacity: workers + queue,
            },
            jobs,
        })
    }

    /// Jobs running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.places.in_flight()
    }

    /// Runs `job` on a hashing thread, or answers `Busy` when the pool and its queue are full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, DomainError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admitted = self
            .places
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                metrics::counter!("tessera_password_hashing_rejected_total").increment(1);
                DomainError::Busy
            })?;
        self.places.record();
        let queued = std::time::Instant::now();
        let span = tracing::Span::current();
        let (answer, answered) = oneshot::channel();
        let places = self.places.clone();
        // The permit moves into the job: a request that gives up still holds its place until the
        // job ends, so the bound counts CPU work, not waiting futures.
        let job: Job = Box::new(move || {
            metrics::histogram!("tessera_password_hashing_wait_seconds")
                .record(queued.elapsed().as_secs_f64());
            // Nobody waits for the answer any more (the request was dropped, as when an HTTP/2
            // client resets its stream; poem does not notice an HTTP/1 client that hangs up): a
            // flood of requests that give up does not keep the threads hashing, nor the queue
            // full for the requests behind it. Their attempts were counted before they got here.
            let out = if answer.is_closed() {
                metrics::counter!("tessera_password_hashing_abandoned_total").increment(1);
                None
            } else {
                let _entered = span.enter();
                Some(job())
            };
            drop(admitted);
            places.record();
            if let Some(out) = out {
                let _ = answer.send(out);
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| DomainError::Internal("the hashing threads are gone".into()))?;
        answered
            .await
            .map_err(|_| DomainError::Internal("a hashing job ended without an answer".into()))
    }
}

/// Raises the calling thread's nice value (on Linux a thread's own, whatever POSIX says of
/// processes). Raising needs no privilege; failing only costs latency, so it is logged.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // `None` is `who = 0`: the calling thread.
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        tracing::warn!(nice, error = %e, "could not lower the hashing threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_threads_of_the_configured_nice_value() {
        let pool = BlockingPool::new(2, 4, 7).expect("pool");
        for _ in 0..4 {
            let nice = pool
                .run(|| rustix::process::getpriority_process(None))
                .await
                .expect("ran")
                .expect("read");
            assert_eq!(nice, 7);
        }
    }

    #[tokio::test]
    async fn a_job_whose_request_has_gone_is_not_run_and_frees_its_place() {
        let pool = BlockingPool::new(1, 1, 0).expect("pool");
        // The one thread is held until `release` is sent, so the next job waits in the queue.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || held.recv()).await }
        });
        while pool.in_flight() < 1 {
            tokio::task::yield_now().await;
        }
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiting = tokio::spawn({
            let (pool, ran) = (pool.clone(), ran.clone());
            async move {
                pool.run(move || ran.store(true, std::sync::atomic::Ordering::SeqCst))
                    .await
            }
        });
        while pool.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        // The request goes away while its job is queued: its place stays taken meanwhile.
        waiting.abort();
        assert!(waiting.await.is_err_and(|e| e.is_cancelled()));
        assert!(matches!(pool.run(|| ()).await, Err(DomainError::Busy)));
        release.send(()).expect("release");
        assert!(busy.await.expect("joined").expect("ran").is_ok());
        // A job behind it runs only after the abandoned one was taken off the queue.
        assert_eq!(pool.run(|| 7).await.expect("ran"), 7);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone_and_the_pool_keeps_its_threads() {
        let pool = BlockingPool::new(1, 1, 0).expect("pool");
        for _ in 0..3 {
            let failed = pool.run(|| -> u8 { panic!("a job that panics") }).await;
            assert!(matches!(failed, Err(DomainError::Internal(_))));
        }
        assert_eq!(pool.run(|| 42).await.expect("ran"), 42);
        assert_eq!(pool.in_flight(), 0);
    }
}
