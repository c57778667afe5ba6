//! One admission control for the HTTP API and Flight SQL: `concurrency` queries run at once,
//! at most `queue` more wait, and a query beyond that is refused at once (HTTP 429, Flight
//! RESOURCE_EXHAUSTED) instead of queueing without bound behind a flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    /// Queries admitted and not yet finished (running or waiting).
    admitted: AtomicUsize,
    concurrency: usize,
    queue: usize,
}

/// A query's place: held from admission until it finishes. Waiting for a slot happens on
/// `run`.
#[derive(Debug)]
pub struct Place {
    admission: Arc<Admission>,
}

impl Admission {
    pub fn new(concurrency: usize, queue: usize) -> Arc<Self> {
        let concurrency = concurrency.max(1);
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            admitted: AtomicUsize::new(0),
            concurrency,
            queue,
        })
    }

    /// A place for one more query, or `Busy` when `concurrency + queue` are admitted.
    pub fn admit(self: &Arc<Self>) -> Result<Place> {
        let most = self.concurrency + self.queue;
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < most).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Place {
                admission: self.clone(),
            }),
            Err(_) => Err(Error::Busy(format!(
                "the server is busy: {} queries running and {} waiting ([server] concurrency \
                 and queue); try again shortly",
                self.concurrency, self.queue
            ))),
        }
    }

    /// Queries admitted and not finished.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

impl Place {
    /// Waits for a running slot.
    pub async fn run(&self) -> Result<OwnedSemaphorePermit> {
        self.admission
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the query slots are closed".into()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.admission.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_running_and_queued() {
        let a = Admission::new(1, 2);
        let places: Vec<_> = (0..3).map(|_| a.admit()).collect();
        assert!(places.iter().all(|p| p.is_ok()));
        assert!(matches!(a.admit(), Err(Error::Busy(_))));
        drop(places);
        assert_eq!(a.admitted(), 0);
        let p = a.admit();
        assert!(p.is_ok());
        if let Ok(p) = p {
            assert!(p.run().await.is_ok());
        }
    }
}
