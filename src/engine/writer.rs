//! The group-committing writer: request handlers hand it their inbox item and
//! wait; it writes everything that arrived meanwhile as one multi-row INSERT,
//! then answers them all. The platform is acknowledged only after this commit.

use crate::clock::Millis;
use crate::store::{InboxItem, Keeper, Store, StoreError};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The most rows one statement carries (9 binds each, under every backend's limit).
const MAX_BATCH: usize = 512;

/// Why an item was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The store failed; the handler answers 503 so the platform retries.
    #[error("the store is unavailable: {0}")]
    Store(String),
    /// Its acknowledgement deadline passed before it could be written:
    /// nothing was stored (the platform has given up on the request).
    #[error("not stored in time")]
    TooLate,
}

/// An item, where to answer, and the instant after which it must not be
/// written any more (its ack would come too late).
type Job = (InboxItem, oneshot::Sender<Result<bool, WriteError>>, Instant);

/// A batch at least this large means requests are arriving faster than one
/// commit takes: an ingest flood.
const FLOOD_BATCH: usize = 16;
/// How long after the last flood-sized batch background work keeps yielding.
const FLOOD_HOLD: Duration = Duration::from_millis(100);

/// A cheap handle to the writer task.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<Job>,
    next: Arc<AtomicI64>,
    pressure: Pressure,
}

/// Whether the writer is under an ingest flood. Background work (running
/// stored requests) yields while it is, so acknowledgements stay fast; the
/// requests themselves are already stored and run when the flood passes.
#[derive(Clone, Default)]
pub struct Pressure {
    start: Arc<OnceInstant>,
    last_flood_ms: Arc<AtomicU64>,
}

#[derive(Default)]
struct OnceInstant(std::sync::OnceLock<Instant>);

impl Pressure {
    fn elapsed_ms(&self) -> u64 {
        self.start.0.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
    }

    fn flood(&self) {
        self.last_flood_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// True while a flood-sized batch was written within the last 100 ms.
    pub fn high(&self) -> bool {
        let last = self.last_flood_ms.load(Ordering::Relaxed);
        last != 0 && self.elapsed_ms().saturating_sub(last) < FLOOD_HOLD.as_millis() as u64
    }

    /// Waits until the flood has passed.
    pub async fn wait_low(&self) {
        while self.high() {
            tokio::time::sleep(FLOOD_HOLD / 4).await;
        }
    }
}

impl InboxWriter {
    /// Starts the writer. The ids of newly stored items are sent to `stored` for
    /// processing; when that queue is full they stay `new` in the store and
    /// the worker's sweep picks them up.
    pub fn spawn(store: Store, stored: mpsc::Sender<i64>) -> InboxWriter {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let pressure = Pressure::default();
        tokio::spawn(run(store, rx, stored, pressure.clone()));
        InboxWriter {
            tx,
            next: Arc::new(AtomicI64::new(rand::random::<u16>() as i64)),
            pressure,
        }
    }

    /// The writer's load, for background work to yield to.
    pub fn pressure(&self) -> Pressure {
        self.pressure.clone()
    }

    /// A fresh, time-ordered id for an item received at `now`.
    pub fn id(&self, now: Millis) -> i64 {
        (now << 20) | (self.next.fetch_add(1, Ordering::Relaxed) & 0xF_FFFF)
    }

    /// Stores `item` durably unless `write_by` passes first. Ok(false) when
    /// it was a duplicate (same dedupe key). A caller that stops waiting
    /// (dropped, timed out) gets its item left out of the batch, or, if the
    /// batch was already committing, marked `abandoned` and never run.
    pub async fn submit(&self, item: InboxItem, write_by: Instant) -> Result<bool, WriteError> {
        let (done, wait) = oneshot::channel();
        let stopped = || WriteError::Store("writer stopped".into());
        self.tx
            .send((item, done, write_by))
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, stored: mpsc::Sender<i64>, pressure: Pressure) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // The connection, kept while batches keep coming (see `store::Conn`).
    let mut keeper = Keeper::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() >= FLOOD_BATCH {
            pressure.flood();
        }
        // Callers that gave up, or whose ack could no longer be in time, are
        // not written at all.
        let now = Instant::now();
        let (keep, late): (Vec<Job>, Vec<Job>) = batch
            .drain(..)
            .partition(|(_, done, write_by)| !done.is_closed() && *write_by > now);
        for (_, done, _) in late {
            let _ = done.send(Err(WriteError::TooLate));
        }
        batch = keep;
        if batch.is_empty() {
            keeper.release();
            continue;
        }
        let mut conn = match keeper.take(&store).await {
            Ok(conn) => conn,
            Err(e) => {
                fail(&mut batch, &e);
                continue;
            }
        };
        // Borrowed, not cloned: the strings are written straight from the jobs.
        let items: Vec<&InboxItem> = batch.iter().map(|j| &j.0).collect();
        let written = conn.insert_inbox_batch(&items).await;
        drop(items);
        match written {
            Ok(inserted) => {
                let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
                let mut abandoned = Vec::new();
                let mut fresh_items = Vec::new();
                for (item, done, _) in batch.drain(..) {
                    let fresh = inserted.contains(&item.id);
                    // A caller that stopped waiting while the batch committed
                    // was told nothing was stored: make that true.
                    match (done.send(Ok(fresh)), fresh) {
                        (Err(_), true) => abandoned.push(item),
                        (Ok(()), true) => fresh_items.push(item.id),
                        _ => {}
                    }
                }
                if !abandoned.is_empty() {
                    tracing::warn!(
                        rows = abandoned.len(),
                        "requests committed after their caller gave up: abandoned, not run"
                    );
                    if let Err(e) = conn.abandon_inbox(&abandoned).await {
                        tracing::error!(error = %e, "could not mark abandoned requests");
                    }
                }
                for id in fresh_items {
                    let _ = stored.try_send(id);
                }
                // More waiting: a flood, keep the connection. Otherwise give
                // it back (dropped).
                if rx.is_empty() {
                    keeper.release();
                } else {
                    keeper.keep(conn);
                }
            }
            // The connection may be broken: given back, not kept.
            Err(e) => fail(&mut batch, &e),
        }
    }
}

/// Answers every job of `batch` that the store failed.
fn fail(batch: &mut Vec<Job>, e: &StoreError) {
    tracing::error!(error = %e, rows = batch.len(), "inbox write failed");
    let err = WriteError::Store(e.to_string());
    for (_, done, _) in batch.drain(..) {
        let _ = done.send(Err(err.clone()));
    }
}
