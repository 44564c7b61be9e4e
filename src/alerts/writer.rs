//! Group commit of alert batches: the webhook handlers hand their placed
//! alerts to one writer task and wait; it stores everything that arrived
//! meanwhile in one transaction (one fsync for many requests), then answers
//! them all. Each handler answers its sender only after that commit.

use crate::clock::Millis;
use crate::store::{Keeper, NewAlert, Store};
use tokio::sync::{mpsc, oneshot};

/// Requests per transaction at most …
const MAX_REQUESTS: usize = 64;
/// … and rows (a request's batch is never split).
const MAX_ROWS: usize = 20_000;
/// A batch of fewer rows than this (single events) keeps the connection
/// for the next while more wait.
const KEEP_ROWS: usize = 100;

type Job = (Vec<NewAlert>, Millis, oneshot::Sender<Result<(), String>>);

/// A cheap handle to the writer task (it ends when every handle is dropped).
#[derive(Clone)]
pub struct AlertWriter {
    tx: mpsc::Sender<Job>,
}

impl AlertWriter {
    /// `stored` is raised after each commit (the alert poster looks).
    pub fn spawn(store: Store, stored: crate::engine::Signal) -> AlertWriter {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(store, stored, rx));
        AlertWriter { tx }
    }

    /// Stores `batch` (arrived at `now`); `Err` says why it was not stored.
    pub async fn store(&self, batch: Vec<NewAlert>, now: Millis) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send((batch, now, done))
            .await
            .map_err(|_| "the alert writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the alert writer has stopped".to_string())?
    }
}

async fn run(store: Store, stored: crate::engine::Signal, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut keeper = Keeper::default();
    loop {
        if jobs.is_empty() && rx.recv_many(&mut jobs, MAX_REQUESTS).await == 0 {
            return;
        }
        while jobs.len() < MAX_REQUESTS {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // The requests that fit (at least one); the rest wait for the next round.
        let (mut take, mut n) = (0, 0);
        for (batch, _, _) in &jobs {
            if take > 0 && n + batch.len() > MAX_ROWS {
                break;
            }
            n += batch.len();
            take += 1;
        }
        let mut rows = Vec::with_capacity(n);
        let mut answers = Vec::with_capacity(take);
        let mut now = 0;
        for (batch, at, done) in jobs.drain(..take) {
            rows.extend(batch);
            now = now.max(at);
            answers.push(done);
        }
        let outcome = match keeper.take(&store).await {
            Ok(mut conn) => {
                let written = conn.ingest_alerts(&rows, now).await.map(|_| ());
                // Small batches coming on (single events): the connection is
                // kept for the next, as the inbox writer keeps its own. Not
                // for webhook posts of many alerts: their commits are long,
                // and the alert poster would wait behind them.
                if written.is_ok() && rows.len() < KEEP_ROWS && !rx.is_empty() {
                    keeper.keep(conn);
                } else {
                    keeper.release();
                }
                written.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if outcome.is_ok() {
            stored.raise();
        }
        for done in answers {
            let _ = done.send(outcome.clone());
        }
    }
}
