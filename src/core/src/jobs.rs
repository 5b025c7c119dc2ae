//! Background jobs (training, fine-tuning, the window's video passes): work
//! on its own named thread that reports events over a bounded channel and
//! polls a cancel flag. Dropping a job cancels it; the work stops at its
//! next check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

pub struct Job<E> {
    /// The job's events, in order; the channel holds `capacity` of them.
    pub events: Receiver<E>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<E: Send + 'static> Job<E> {
    /// Run `work(events, cancelled)` on a thread called `name`. The work
    /// decides which events may be dropped when the receiver lags
    /// (`try_send`) and which must arrive (`send`).
    pub fn start(
        name: &str,
        capacity: usize,
        work: impl FnOnce(&SyncSender<E>, &AtomicBool) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(capacity);
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || work(&tx, &flag))?;
        Ok(Self { events: rx, cancel, thread: Some(thread) })
    }
}

impl<E> Job<E> {
    /// Ask the work to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Wait for the thread (after its last event).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<E> Drop for Job<E> {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_job_reports_on_its_named_thread_and_stops_when_cancelled_or_dropped() {
        let counting = |tx: &SyncSender<String>, stop: &AtomicBool| {
            let name = std::thread::current().name().unwrap_or_default().to_string();
            while !stop.load(Ordering::Relaxed) {
                if tx.send(name.clone()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = tx.send("stopped".into());
        };
        let job = Job::start("auscope-test-job", 4, counting).expect("thread");
        assert_eq!(job.events.recv_timeout(Duration::from_secs(5)).expect("event"), "auscope-test-job");
        job.cancel();
        let last = job.events.iter().find(|e| e == "stopped");
        assert_eq!(last.as_deref(), Some("stopped"));
        job.join();

        // Dropping cancels: the thread ends (its channel closes) on its own.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let job = Job::start("auscope-test-job", 1, move |tx: &SyncSender<u8>, stop: &AtomicBool| {
            while !stop.load(Ordering::Relaxed) {
                let _ = tx.try_send(0);
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = done_tx.send(());
        })
        .expect("thread");
        drop(job);
        done_rx.recv_timeout(Duration::from_secs(5)).expect("the dropped job stopped");
    }
}
