//! Group commit for engine steps that change no state of their own: a
//! read-only execution's audit entry and rendered result, a usage error's
//! answer, each with its stored request's completion. Steps hand their
//! effects here and wait; the committer applies everything that arrived
//! meanwhile in ONE transaction (one fsync for many steps), then answers them
//! all. A step's effects are never split: each lands whole with its batch,
//! or the whole batch fails and every step in it sees the error. Steps with
//! a conditional state change (decisions, claims) keep their own transaction.

use crate::audit::Entry;
use crate::store::{OutMessage, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Steps per transaction at most.
const MAX_BATCH: usize = 256;

/// The effects of one stateless step.
#[derive(Debug, Default)]
pub struct Effects {
    pub audit: Vec<Entry>,
    pub messages: Vec<OutMessage>,
    /// The stored request the step completes.
    pub inbox: Option<i64>,
    /// When the step ran (the messages' enqueue time).
    pub now: crate::clock::Millis,
    /// Rows for incident timelines: (incident, event).
    pub timeline: Vec<(i64, crate::incident::Event)>,
}

type Job = (Effects, oneshot::Sender<Result<(), Arc<StoreError>>>);

/// A handle to the committer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

/// Why a batch did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("{0}")]
    Store(Arc<StoreError>),
    #[error("the committer stopped")]
    Stopped,
}

impl Committer {
    /// Starts the committer over `store` (on the current tokio runtime).
    pub fn spawn(store: Store) -> Committer {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(run(store, rx));
        Committer { tx }
    }

    /// Applies `effects` durably (with whatever else is waiting).
    pub async fn commit(&self, effects: Effects) -> Result<(), CommitError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((effects, done))
            .await
            .map_err(|_| CommitError::Stopped)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CommitError::Store(e)),
            Err(_) => Err(CommitError::Stopped),
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = apply(&store, &batch).await.map_err(Arc::new);
        if let Err(e) = &result {
            tracing::error!(error = %e, steps = batch.len(), "a group commit of steps failed");
        }
        for (_, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

async fn apply(store: &Store, batch: &[Job]) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let mut done = Vec::new();
    let mut messages = Vec::new();
    let mut audit = Vec::new();
    for (effects, _) in batch {
        audit.extend(effects.audit.iter().cloned());
        messages.extend(effects.messages.iter().cloned());
        done.extend(effects.inbox);
    }
    // In the order the steps arrived: one stretch of the chain per batch.
    if !audit.is_empty() {
        tx.append_audits(&audit).await?;
    }
    // The batch's steps ran within milliseconds of each other: one enqueue time.
    let now = batch.iter().map(|(e, _)| e.now).max().unwrap_or_default();
    tx.enqueue_messages(&messages, now).await?;
    tx.finish_inbox_batch(&done).await?;
    for (id, e) in batch.iter().flat_map(|(effects, _)| &effects.timeline) {
        tx.add_incident_event(*id, e).await?;
    }
    tx.commit().await
}
