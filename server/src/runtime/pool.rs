//! Dedicated threads for the calls that outlast their first epoch tick, so
//! long-running user code never occupies the async executor's threads.
//!
//! A dedicated pool (rather than `spawn_blocking`) keeps one thread per
//! instance-pool slot, started once: a call that moves here always finds a
//! thread. (Wasm runs on its fiber's stack wherever it is polled; the stack
//! size here is room for the host side only, kept generous.)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use super::error::RuntimeError;

/// Room for host frames (wasmtime's entry, host imports) beyond wasm's own,
/// on a fiber stack and on the pre-initialisation thread.
pub(crate) const HOST_STACK_HEADROOM: usize = 2 * 1024 * 1024;

type Job = Box<dyn FnOnce() + Send + 'static>;

pub(crate) struct WorkerPool {
    sender: Mutex<mpsc::Sender<Job>>,
}

impl WorkerPool {
    pub(crate) fn new(threads: usize, wasm_stack: usize) -> Result<Self, RuntimeError> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            thread::Builder::new()
                .name(format!("wasm-worker-{index}"))
                .stack_size(wasm_stack + HOST_STACK_HEADROOM)
                .spawn(move || worker(&receiver))
                .map_err(|e| RuntimeError::Engine(format!("cannot start wasm worker: {e}")))?;
        }
        Ok(Self {
            sender: Mutex::new(sender),
        })
    }

    /// Run `job` on a worker and await its result. Queues when all workers
    /// are busy.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T, RuntimeError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The receiver may be gone (caller cancelled); nothing to do then.
            let _ = tx.send(job());
        });
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| RuntimeError::Worker("worker pool has shut down".into()))?;
        rx.await
            .map_err(|_| RuntimeError::Worker("the execution panicked".into()))
    }
}

fn worker(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let guard = receiver
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.recv()
        };
        let Ok(job) = job else {
            // The pool was dropped: no more work will arrive.
            return;
        };
        // A panic drops the job's result sender, which the caller sees as a
        // worker failure; the thread itself stays in service.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("wasm worker job panicked");
        }
    }
}
