//! The group-committing inbox writer under a flood: every acknowledged item
//! is stored, and the rest of opsbot still gets the store's connection (the
//! writer holds it between batches only for a bounded time).

use crate::support::{inbox_item, run_test};
use opsbot::engine::InboxWriter;
use opsbot::store::InboxItem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn item(writer: &InboxWriter, n: usize) -> InboxItem {
    let at = 1_700_000_000_000 + n as i64;
    inbox_item(writer.id(at), at, Some(&format!("cmd:{n}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_stored_and_other_store_work_still_gets_its_turn() {
    run_test(|t| {
        Box::pin(async move {
            let (tx, mut ids) = tokio::sync::mpsc::channel(1 << 16);
            let writer = InboxWriter::spawn(t.store.clone(), tx);
            let flooding = Arc::new(AtomicBool::new(true));
            let (next, stored) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let mut senders = Vec::new();
            for _ in 0..32 {
                let (w, flooding, next, stored) =
                    (writer.clone(), flooding.clone(), next.clone(), stored.clone());
                senders.push(tokio::spawn(async move {
                    while flooding.load(Ordering::Relaxed) {
                        let it = item(&w, next.fetch_add(1, Ordering::Relaxed));
                        let write_by = Instant::now() + Duration::from_secs(30);
                        assert_eq!(w.submit(it, write_by).await.ok(), Some(true));
                        stored.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            // Other work meanwhile: each store call finishes, and the flood
            // goes on between them.
            let first = stored.load(Ordering::Relaxed);
            for _ in 0..20 {
                let asked = Instant::now();
                t.store.inbox_counts().await.expect("counts while flooded");
                assert!(
                    asked.elapsed() < Duration::from_secs(2),
                    "{}: another store call waited {:?} behind the flood",
                    t.name,
                    asked.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let during = stored.load(Ordering::Relaxed) - first;
            assert!(during > 0, "{}: the flood stalled", t.name);
            flooding.store(false, Ordering::Relaxed);
            for s in senders {
                s.await.expect("sender");
            }
            let acked = stored.load(Ordering::Relaxed);
            assert!(acked > 100, "{}: only {acked} stored", t.name);
            let counts = t.store.inbox_counts().await.expect("counts");
            assert_eq!(counts, vec![("new".to_string(), acked as i64)], "{}", t.name);
            let mut handed = 0;
            while ids.try_recv().is_ok() {
                handed += 1;
            }
            assert_eq!(handed, acked, "{}: every stored id goes to processing", t.name);
        })
    })
    .await;
}
