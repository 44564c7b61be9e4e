//! Counters exposed on `/metrics` in the Prometheus text format. The store
//! gauges are counted by a background task (`server::spawn_gauges`) and
//! kept here, so a scrape never queries the store the ack path shares.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::engine::Outcome;

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; Outcome::ALL.len()],
    executions_ok: AtomicU64,
    executions_failed: AtomicU64,
    panics: AtomicU64,
    /// Commands refused by the per-identity rate limit.
    rate_limited: AtomicU64,
    /// Requests answered 503 by the concurrency limit.
    shed: AtomicU64,
    /// The latest store counts (empty until the first refresh).
    gauges: RwLock<Arc<StoreGauges>>,
}

impl Metrics {
    pub fn request(&self, o: Outcome) {
        self.requests[o as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn execution(&self, ok: bool) {
        let c = if ok {
            &self.executions_ok
        } else {
            &self.executions_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A background task panicked (it was logged; the process goes on).
    pub fn task_panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Background task panics so far (the test harness fails on any).
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the store gauges (the background refresher).
    pub fn set_gauges(&self, g: StoreGauges) {
        if let Ok(mut cur) = self.gauges.write() {
            *cur = Arc::new(g);
        }
    }

    /// The exposition text with the last refreshed store gauges.
    pub fn render_cached(&self) -> String {
        let gauges = self.gauges.read().map(|g| g.clone()).unwrap_or_default();
        self.render(&gauges)
    }

    /// The exposition text. `gauges` are current counts per state from the
    /// store: approvals, inbox, outbox.
    pub fn render(&self, gauges: &StoreGauges) -> String {
        let approvals = &gauges.approvals;
        let mut s = String::new();
        s.push_str("# HELP opsbot_requests_total Chat commands handled, by outcome.\n# TYPE opsbot_requests_total counter\n");
        for o in Outcome::ALL {
            let n = self.requests[o as usize].load(Ordering::Relaxed);
            let _ = writeln!(s, "opsbot_requests_total{{outcome=\"{}\"}} {n}", o.as_str());
        }
        s.push_str("# HELP opsbot_executions_total Runbook actions executed, by outcome.\n# TYPE opsbot_executions_total counter\n");
        for (label, c) in [
            ("succeeded", &self.executions_ok),
            ("failed", &self.executions_failed),
        ] {
            let _ = writeln!(
                s,
                "opsbot_executions_total{{outcome=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, c) in [
            (
                "opsbot_rate_limited_total",
                "Commands refused by the per-identity rate limit.",
                &self.rate_limited,
            ),
            (
                "opsbot_http_shed_total",
                "Requests answered 503 by the concurrency limit.",
                &self.shed,
            ),
            (
                "opsbot_task_panics_total",
                "Background tasks that panicked.",
                &self.panics,
            ),
        ] {
            let n = c.load(Ordering::Relaxed);
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {n}");
        }
        s.push_str(
            "# HELP opsbot_approvals Approvals in the store, by state.\n# TYPE opsbot_approvals gauge\n",
        );
        for state in crate::approval::State::ALL {
            let n = approvals
                .iter()
                .find(|(k, _)| k == state.as_str())
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(s, "opsbot_approvals{{state=\"{}\"}} {n}", state.as_str());
        }
        for (name, help, rows) in [
            ("opsbot_inbox", "Stored chat requests, by state.", &gauges.inbox),
            (
                "opsbot_outbox",
                "Outgoing chat messages, by state.",
                &gauges.outbox,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (state, n) in rows {
                let _ = writeln!(s, "{name}{{state=\"{state}\"}} {n}");
            }
        }
        s
    }
}

/// Counts per state read from the store by the background refresher.
#[derive(Debug, Default)]
pub struct StoreGauges {
    pub approvals: Vec<(String, i64)>,
    pub inbox: Vec<(String, i64)>,
    pub outbox: Vec<(String, i64)>,
}

impl StoreGauges {
    /// Reads them all, or the first failure.
    pub async fn try_read(store: &crate::store::Store) -> Result<StoreGauges, crate::store::StoreError> {
        Ok(StoreGauges {
            approvals: store.approval_counts().await?,
            inbox: store.inbox_counts().await?,
            outbox: store.outbox_counts().await?,
        })
    }

    /// Reads them; a failing query leaves its gauge empty.
    pub async fn read(store: &crate::store::Store) -> StoreGauges {
        StoreGauges {
            approvals: store.approval_counts().await.unwrap_or_default(),
            inbox: store.inbox_counts().await.unwrap_or_default(),
            outbox: store.outbox_counts().await.unwrap_or_default(),
        }
    }
}
