//! Store behaviour on SQLite and Postgres alike.

use crate::support::{both, run_test, verify_audit, TestStore};
use opsbot::approval::{Approval, State};
use opsbot::audit::{self, Entry};
use std::collections::BTreeMap;

fn new_approval(now: i64) -> Approval {
    Approval {
        id: 0,
        profile: "queue".into(),
        command: "queue retry".into(),
        args: BTreeMap::from([("queue".to_string(), "ai-analysis".to_string())]),
        display: "/queue retry ai-analysis".into(),
        request_hash: "abc".into(),
        risk: "write".into(),
        requester: "alice".into(),
        requester_identity: "console:alice".into(),
        channel: Some("C1".into()),
        thread: None,
        roles: vec!["sre".into(), "eng-manager".into()],
        needed: 2,
        votes: Vec::new(),
        state: State::Pending,
        created_at: now,
        expires_at: now + 900_000,
        decided_by: None,
        result: None,
        origin: None,
        preview: None,
    }
}

fn entry(i: i64) -> Entry {
    Entry {
        at: i,
        kind: "request".into(),
        person: format!("p{i}"),
        identity: format!("console:p{i}"),
        source: "console".into(),
        channel: None,
        command: Some("queue:queue stats".into()),
        args: Some("{}".into()),
        outcome: "succeeded".into(),
        detail: None,
    }
}

#[tokio::test]
async fn approvals_round_trip_and_votes_dedupe() {
    for t in both().await {
        let s = &t.store;
        let a = s.create_approval(&new_approval(1000)).await.unwrap();
        assert_eq!(a.state, State::Pending, "{}", t.name);
        let got = s.approval(a.id).await.unwrap().unwrap();
        assert_eq!(got, a, "{}", t.name);
        assert!(s.add_vote(a.id, "bob", "console:bob", 1100).await.unwrap());
        assert!(
            !s.add_vote(a.id, "bob", "slack:UB", 1101).await.unwrap(),
            "same person twice: {}",
            t.name
        );
        assert!(
            !s.approve_if_enough_votes(a.id, 1200).await.unwrap(),
            "1 of 2 is not enough: {}",
            t.name
        );
        assert!(s.add_vote(a.id, "carol", "console:carol", 1300).await.unwrap());
        assert!(s.approve_if_enough_votes(a.id, 1300).await.unwrap(), "{}", t.name);
        assert!(
            !s.approve_if_enough_votes(a.id, 1300).await.unwrap(),
            "only once: {}",
            t.name
        );
        let got = s.approval(a.id).await.unwrap().unwrap();
        assert_eq!(got.state, State::Approved);
        assert_eq!(
            got.votes.iter().map(|v| v.person.as_str()).collect::<Vec<_>>(),
            vec!["bob", "carol"]
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn transitions_are_conditional_on_the_current_state() {
    for t in both().await {
        let s = &t.store;
        let a = s.create_approval(&new_approval(0)).await.unwrap();
        assert!(!s
            .transition(a.id, State::Approved, State::Executing, 1, None, None)
            .await
            .unwrap());
        assert!(s
            .transition(
                a.id,
                State::Pending,
                State::Rejected,
                1,
                Some("bob"),
                Some("not now")
            )
            .await
            .unwrap());
        assert!(!s
            .transition(a.id, State::Pending, State::Cancelled, 2, Some("alice"), None)
            .await
            .unwrap());
        let got = s.approval(a.id).await.unwrap().unwrap();
        assert_eq!(
            (got.state, got.decided_by.as_deref(), got.result.as_deref()),
            (State::Rejected, Some("bob"), Some("not now"))
        );
        assert_eq!(
            s.approval_counts().await.unwrap(),
            vec![("rejected".to_string(), 1)],
            "{}",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn expired_approvals_cannot_be_approved_and_are_not_listed() {
    for t in both().await {
        let s = &t.store;
        let a = s.create_approval(&new_approval(0)).await.unwrap();
        assert_eq!(s.pending_approvals(10).await.unwrap().len(), 1);
        assert!(
            s.pending_approvals(900_000).await.unwrap().is_empty(),
            "{}",
            t.name
        );
        s.add_vote(a.id, "bob", "console:bob", 900_001).await.unwrap();
        s.add_vote(a.id, "carol", "console:carol", 900_001).await.unwrap();
        assert!(
            !s.approve_if_enough_votes(a.id, 900_001).await.unwrap(),
            "{}",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_audit_appends_form_one_chain() {
    for t in both().await {
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = t.store.clone();
            tasks.push(tokio::spawn(
                async move { s.append_audit(&entry(i)).await.unwrap() },
            ));
        }
        let mut seqs: Vec<i64> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        seqs.sort();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "{}", t.name);
        assert_eq!(verify_audit(&t.store).await, Ok(40), "{}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn audit_log_refuses_updates_and_deletes() {
    for t in both().await {
        t.store.append_audit(&entry(1)).await.unwrap();
        let err = t
            .store
            .tamper_for_tests("UPDATE audit_log SET person = 'mallory'")
            .await;
        assert!(err.is_err(), "update must fail on {}", t.name);
        let err = t.store.tamper_for_tests("DELETE FROM audit_log").await;
        assert!(err.is_err(), "delete must fail on {}", t.name);
        assert_eq!(verify_audit(&t.store).await, Ok(1));
        t.cleanup().await;
    }
}

#[tokio::test]
async fn audit_verify_finds_a_removed_tail_and_postgres_refuses_truncate() {
    for t in both().await {
        for i in 1..=3 {
            t.store.append_audit(&entry(i)).await.unwrap();
        }
        assert_eq!(verify_audit(&t.store).await, Ok(3));
        if t.name == "postgres" {
            let err = t.store.tamper_for_tests("TRUNCATE audit_log").await;
            assert!(err.is_err(), "TRUNCATE must fail on postgres");
            assert_eq!(verify_audit(&t.store).await, Ok(3));
        }
        // Someone with the database's owner rights removes the last entry.
        let disable = match t.name {
            "sqlite" => "DROP TRIGGER audit_log_no_delete",
            _ => "DROP TRIGGER audit_log_no_change ON audit_log",
        };
        t.store.tamper_for_tests(disable).await.unwrap();
        t.store
            .tamper_for_tests("DELETE FROM audit_log WHERE seq = 3")
            .await
            .unwrap();
        assert_eq!(
            verify_audit(&t.store).await,
            Err(audit::Broken::Truncated { last: 2, head: 3 }),
            "{}",
            t.name
        );
        t.cleanup().await;
    }
}

/// Rows written before migration 0006 (hash encoding v1: serde_json of the
/// entry, no source) still verify, followed by new v2 rows.
#[tokio::test]
async fn rows_hashed_before_the_source_column_still_verify() {
    for t in both().await {
        let old = Entry {
            source: String::new(),
            ..entry(1)
        };
        let hash = audit::hash_as(1, audit::GENESIS, 1, &old).unwrap();
        // As such a row looks after the migration: no source, version 1 by default.
        let insert = format!(
            "INSERT INTO audit_log (seq, at, kind, person, identity, channel, command, args, outcome, detail, prev_hash, hash)
             VALUES (1, 1, 'request', 'p1', 'console:p1', NULL, 'queue:queue stats', '{{}}', 'succeeded', NULL, '{}', '{hash}')",
            audit::GENESIS
        );
        t.store.tamper_for_tests(&insert).await.unwrap();
        t.store
            .tamper_for_tests(&format!(
                "UPDATE audit_head SET seq = 1, hash = '{hash}' WHERE id = 1"
            ))
            .await
            .unwrap();
        t.store.append_audit(&entry(2)).await.unwrap();
        let records = t.store.audit_records().await.unwrap();
        let versions: Vec<(u8, &str)> = records
            .iter()
            .map(|r| (r.version, r.entry.source.as_str()))
            .collect();
        assert_eq!(versions, [(1, ""), (2, "console")], "{}", t.name);
        assert_eq!(verify_audit(&t.store).await, Ok(2), "{}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_second_process_sees_the_same_state() {
    let t = TestStore::postgres().await;
    let a = t.store.create_approval(&new_approval(0)).await.unwrap();
    let other = t.reopen().await;
    assert_eq!(
        other.approval(a.id).await.unwrap().unwrap().display,
        "/queue retry ai-analysis"
    );
    other.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn inbox_batches_dedupe_and_housekeeping_keeps_unfinished_rows() {
    for t in both().await {
        let s = &t.store;
        let item = crate::support::inbox_item;
        let ids = s
            .insert_inbox_batch(&[
                &item(1, 10, Some("ev1")),
                &item(2, 10, None),
                &item(3, 10, Some("ev1")),
            ])
            .await
            .unwrap();
        assert_eq!(ids.len(), 2, "the repeated event key is stored once: {}", t.name);
        assert!(s.claim_inbox(1).await.unwrap());
        assert!(!s.claim_inbox(1).await.unwrap(), "claimed once: {}", t.name);
        s.finish_inbox(1).await.unwrap();
        let retention = opsbot::engine::housekeeping::RETENTION.as_millis() as i64;
        opsbot::engine::housekeeping::prune(s, 1_000 + retention).await;
        assert_eq!(
            s.inbox_state(1).await.unwrap(),
            None,
            "old finished row pruned on {}",
            t.name
        );
        let kept = s
            .inbox_state(2)
            .await
            .unwrap()
            .or(s.inbox_state(3).await.unwrap());
        assert_eq!(kept.as_deref(), Some("new"), "unprocessed rows are never pruned");
        let gauges = opsbot::metrics::StoreGauges::read(s).await;
        assert_eq!(gauges.inbox, vec![("new".to_string(), 1)]);
        t.cleanup().await;
    }
}

/// A request's dedupe key is refused again after the store is reopened (a
/// restart), on SQLite from the recent rows' keys, on PostgreSQL by its
/// index; a key whose request was abandoned is accepted again.
#[tokio::test]
async fn inbox_replays_are_refused_after_a_reopen_and_abandoned_keys_released() {
    for t in both().await {
        let item = |id: i64, key: &str| crate::support::inbox_item(id, id >> 20, Some(key));
        let at = 1_700_000_000_000_i64;
        let (a, b) = (item(at << 20, "cmd:a"), item((at << 20) + 1, "cmd:b"));
        assert_eq!(t.store.insert_inbox_batch(&[&a, &b]).await.unwrap().len(), 2);
        let mut conn = t.store.conn().await.unwrap();
        conn.abandon_inbox(std::slice::from_ref(&b)).await.unwrap();
        drop(conn);
        let reopened = t.reopen().await;
        let later = |n: i64, key: &str| item(((at + 60_000) << 20) + n, key);
        let (a2, b2, c) = (later(0, "cmd:a"), later(1, "cmd:b"), later(2, "cmd:c"));
        let ids = reopened.insert_inbox_batch(&[&a2, &b2, &c]).await.unwrap();
        assert_eq!(
            ids,
            vec![b2.id, c.id],
            "{}: the replay of a is refused, abandoned b and new c are stored",
            t.name
        );
        assert_eq!(reopened.inbox_state(a2.id).await.unwrap(), None, "{}", t.name);
        reopened.close().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn approvals_keep_their_expiry_on_the_timer_table() {
    use opsbot::store::APPROVAL_EXPIRY;
    run_test(|t| {
        Box::pin(async move {
            let s = &t.store;
            assert_eq!(s.next_due().await.unwrap(), None);
            let a = s.create_approval(&new_approval(0)).await.unwrap();
            let b = s.create_approval(&new_approval(100_000)).await.unwrap();
            assert_eq!(s.next_due().await.unwrap(), Some(900_000), "{}", t.name);
            assert!(s.due_timers(899_999, 10).await.unwrap().is_empty());
            let due = s.due_timers(900_000, 10).await.unwrap();
            assert_eq!(due.len(), 1, "{}", t.name);
            assert_eq!(
                (due[0].kind.as_str(), due[0].item.clone()),
                (APPROVAL_EXPIRY, a.id.to_string())
            );
            // Taking a due item is a claim: exactly once.
            let mut tx = s.begin().await.unwrap();
            assert!(tx
                .take_timer(APPROVAL_EXPIRY, &due[0].item, 900_000)
                .await
                .unwrap());
            assert!(!tx
                .take_timer(APPROVAL_EXPIRY, &due[0].item, 900_000)
                .await
                .unwrap());
            tx.commit().await.unwrap();
            assert_eq!(s.next_due().await.unwrap(), Some(1_000_000));
            // Deciding an approval removes its deadline in the same transaction.
            assert!(s
                .transition(b.id, State::Pending, State::Cancelled, 5, Some("alice"), None)
                .await
                .unwrap());
            assert_eq!(s.next_due().await.unwrap(), None, "{}", t.name);
            assert_eq!(s.timer_count().await.unwrap(), 0);
        })
    })
    .await;
}

#[tokio::test]
async fn a_rolled_back_step_leaves_nothing() {
    run_test(|t| {
        Box::pin(async move {
            let s = &t.store;
            let before = s.audit_records().await.unwrap().len();
            {
                let mut tx = s.begin().await.unwrap();
                let a = tx.create_approval(&new_approval(0)).await.unwrap();
                tx.append_audit(&entry(1)).await.unwrap();
                tx.enqueue_messages(
                    &[opsbot::store::OutMessage {
                        platform: "p".into(),
                        channel: "C1".into(),
                        op: opsbot::store::OutOp::Update {
                            key: format!("approval:{}", a.id),
                        },
                        body: serde_json::json!({}),
                    }],
                    1,
                )
                .await
                .unwrap();
                // dropped without commit: a crash mid-step
            }
            assert_eq!(s.audit_records().await.unwrap().len(), before, "{}", t.name);
            assert!(s.outbox_heads("p").await.unwrap().is_empty(), "{}", t.name);
            assert_eq!(s.timer_count().await.unwrap(), 0, "{}", t.name);
            assert!(s.pending_approvals(0).await.unwrap().is_empty(), "{}", t.name);
        })
    })
    .await;
}

#[tokio::test]
async fn outbox_rows_keep_their_response_url_fallback() {
    for t in both().await {
        use opsbot::store::{OutMessage, OutOp};
        let msg = OutMessage {
            platform: "slack".into(),
            channel: "C1".into(),
            op: OutOp::Post {
                key: None,
                thread: None,
                fallback: Some("https://hooks.example/r/1".into()),
            },
            body: serde_json::json!({"text": "hi"}),
        };
        t.store.enqueue_messages(&[msg], 5).await.unwrap();
        let heads = t.store.outbox_heads("slack").await.unwrap();
        assert!(
            matches!(&heads[0].message.op, OutOp::Post { fallback: Some(u), .. } if u == "https://hooks.example/r/1"),
            "{}: {:?}",
            t.name,
            heads[0].message.op
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn outbox_rows_keep_their_reply_handle_and_keyed_answers_resolve() {
    for t in both().await {
        use opsbot::store::{KeyLookup, OutMessage, OutOp};
        let respond = |key: Option<&str>, user: Option<&str>| OutMessage {
            platform: "p".into(),
            channel: "C1".into(),
            op: OutOp::Respond {
                handle: "handle-1".into(),
                key: key.map(Into::into),
                user: user.map(Into::into),
            },
            body: serde_json::json!({"content": "hi"}),
        };
        let msgs = [respond(Some("approval:1"), None), respond(None, Some("U1"))];
        t.store.enqueue_messages(&msgs, 5).await.unwrap();
        let rows = t.store.outbox_pending_for_tests("p").await.unwrap();
        let ops: Vec<OutOp> = rows.iter().map(|r| r.message.op.clone()).collect();
        assert_eq!(ops, [msgs[0].op.clone(), msgs[1].op.clone()], "{}", t.name);
        // A later edit waits for the keyed answer, then finds where it landed.
        assert_eq!(
            t.store
                .resolve_message_key("p", "approval:1", rows[1].id + 1)
                .await
                .unwrap(),
            KeyLookup::Waiting,
            "{}",
            t.name
        );
        t.store
            .outbox_mark_posted(rows[0].id, "p", "approval:1", "C1", "M1", 6)
            .await
            .unwrap();
        assert_eq!(
            t.store
                .resolve_message_key("p", "approval:1", rows[1].id + 1)
                .await
                .unwrap(),
            KeyLookup::Posted {
                channel: "C1".into(),
                ts: "M1".into()
            },
            "{}",
            t.name
        );
        t.cleanup().await;
    }
}
