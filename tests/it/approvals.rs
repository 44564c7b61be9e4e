//! The two-person rule end to end through the pipeline, on both stores.

use crate::support::{
    both, clock, config, dead_url, pipeline, pipeline_with, run_test, say, say_from, slack_origin,
    verify_audit, FakeTarget, TestStore,
};
use opsbot::approval::State;
use opsbot::clock::Clock;
use opsbot::engine::Outcome;

const RETRY: (&str, &str) = ("POST", "/api/queue/ai-analysis/retry-failed");

#[tokio::test]
async fn transcript_request_self_approval_refused_second_person_executes_once() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let r = say(&p, "console:alice", "/queue retry ai-analysis").await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}: {}", t.name, r.text);
        let id = r.approval.unwrap();
        assert_eq!(
            r.text,
            format!("approval requested: a{id} (needs sre or eng-manager, expires in 15m)")
        );
        assert_eq!(target.count(RETRY.0, RETRY.1), 0, "nothing runs before approval");

        let r = say(&p, "console:alice", &format!("/approve a{id}")).await;
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (
                Outcome::NotPermitted,
                format!("refused: you requested a{id}; another person must approve it").as_str()
            )
        );
        // Same person through another account: still self-approval.
        let r = say(&p, "discord:111", &format!("/approve {id}")).await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        assert!(r.text.contains("you requested"), "{}", r.text);
        // Right person, wrong role.
        let r = say(&p, "console:dave", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::NotPermitted);
        assert!(r.text.contains("sre, eng-manager"), "{}", r.text);

        let r = say(&p, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
        assert!(
            r.text.contains("Retried 37 failed jobs in ai-analysis"),
            "{}",
            r.text
        );
        assert_eq!(target.count(RETRY.0, RETRY.1), 1);

        for who in ["console:bob", "console:carol"] {
            let r = say(&p, who, &format!("/approve a{id}")).await;
            assert_eq!(r.outcome, Outcome::NotPermitted);
            assert_eq!(r.text, format!("refused: a{id} already executed"));
        }
        assert_eq!(target.count(RETRY.0, RETRY.1), 1, "still once");
        let a = t.store.approval(id).await.unwrap().unwrap();
        assert_eq!(a.state, State::Succeeded);

        let records = t.store.audit_records().await.unwrap();
        let kinds: Vec<&str> = records.iter().map(|r| r.entry.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "approval.requested",
                "approval.refused",
                "approval.refused",
                "approval.refused",
                "approval.approved",
                "execution",
                "approval.refused",
                "approval.refused"
            ],
            "{}",
            t.name
        );
        assert_eq!(verify_audit(&t.store).await, Ok(records.len()));
        let exec = &records[5].entry;
        assert_eq!(
            (exec.person.as_str(), exec.outcome.as_str()),
            ("bob", "succeeded")
        );
        assert!(
            records
                .iter()
                .all(|r| r.entry.source == "console" && r.version == 2),
            "every entry says where it came from"
        );
        t.cleanup().await;
    }
}

/// Many approvers click at the same instant, through two independent
/// pipelines (two processes) sharing one database: the action runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_approvers_across_two_processes_execute_exactly_once() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let mut people = String::new();
        for i in 0..16 {
            people.push_str(&format!(
                "[people.sre{i}]\nconsole = \"sre{i}\"\nroles = [\"sre\"]\n"
            ));
        }
        let cfg = config(&people);
        let p1 = pipeline_with(&cfg, t.store.clone(), &target.url, clock());
        let p2 = pipeline_with(&cfg, t.reopen().await, &target.url, clock());
        let id = say(&p1, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let p = if i % 2 == 0 { p1.clone() } else { p2.clone() };
            // Each approver double-clicks.
            for _ in 0..2 {
                let p = p.clone();
                tasks.push(tokio::spawn(async move {
                    say(&p, &format!("console:sre{i}"), &format!("/approve a{id}")).await
                }));
            }
        }
        let replies: Vec<_> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let executed = replies.iter().filter(|r| r.outcome == Outcome::Done).count();
        assert_eq!(executed, 1, "{}: {:#?}", t.name, replies);
        assert_eq!(target.count(RETRY.0, RETRY.1), 1, "{}", t.name);
        assert!(
            replies.iter().all(|r| r.outcome != Outcome::Failed),
            "{replies:#?}"
        );
        assert_eq!(
            t.store.approval(id).await.unwrap().unwrap().state,
            State::Succeeded
        );
        assert!(verify_audit(&t.store).await.is_ok());
        t.cleanup().await;
    }
}

#[tokio::test]
async fn expired_rejected_and_cancelled_approvals_cannot_run() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let c = clock();
        let p = pipeline(t.store.clone(), &target.url, c.clone());
        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        c.advance(15 * 60 * 1000);
        let r = say(&p, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::NotPermitted);
        assert!(
            r.text.starts_with(&format!("refused: a{id} expired at ")),
            "{}",
            r.text
        );
        assert_eq!(t.store.approval(id).await.unwrap().unwrap().state, State::Expired);

        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let r = say(&p, "console:bob", &format!("/reject a{id} fix the cause first")).await;
        assert_eq!(r.text, format!("a{id} rejected by bob: fix the cause first"));
        let r = say(&p, "console:carol", &format!("/approve a{id}")).await;
        assert_eq!(r.text, format!("refused: a{id} is rejected (by bob)"));

        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let r = say(&p, "console:dave", &format!("/cancel a{id}")).await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        let r = say(&p, "console:alice", &format!("/cancel a{id}")).await;
        assert_eq!(
            (r.outcome, r.text.clone()),
            (Outcome::Done, format!("a{id} cancelled by alice"))
        );
        assert_eq!(target.count(RETRY.0, RETRY.1), 0);

        let r = say(&p, "console:bob", "/approve a999999").await;
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (Outcome::Usage, "there is no approval a999999 (see /approvals)")
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn approvals_lists_pending_with_needs_and_expiry() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        assert_eq!(
            say(&p, "console:bob", "/approvals").await.text,
            "no approvals pending"
        );
        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let r = say(&p, "console:bob", "/approvals").await;
        assert_eq!(r.text, format!("a{id} · /queue retry ai-analysis · write · by alice · needs sre or eng-manager · 0 of 1 approved · expires in 15m"));
        assert!(r.private, "the list is for the asker alone");
        let r = say(&p, "console:mallory", "/approvals").await;
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (
                Outcome::NotPermitted,
                "refused: only people opsbot knows may list approvals"
            )
        );
        let last = t.store.audit_records().await.unwrap().pop().unwrap().entry;
        assert_eq!(
            (last.kind.as_str(), last.identity.as_str()),
            ("denied", "console:mallory")
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn unreachable_target_marks_the_approval_failed_and_says_why() {
    for t in both().await {
        let dead = dead_url().await;
        let p = pipeline(t.store.clone(), &dead, clock());
        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let r = say(&p, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
        assert!(r.text.contains("queue_api"), "names the target: {}", r.text);
        let a = t.store.approval(id).await.unwrap().unwrap();
        assert_eq!(a.state, State::Failed);
        assert!(a.result.unwrap().contains("queue_api"));
        t.cleanup().await;
    }
}

/// A crash after the claim and before the result: never re-run silently.
/// A crash after approval and before the claim: runs once on restart.
#[tokio::test]
async fn restart_marks_interrupted_executions_unknown_and_runs_approved_ones_once() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let c = clock();
        let p = pipeline(t.store.clone(), &target.url, c.clone());
        let s = &t.store;
        let (interrupted, waiting) = two_retries(&p).await;
        crash_between_claim_and_result(s, c.now_ms(), interrupted, waiting).await;

        // "Restart": a fresh pipeline over the same database.
        let restarted = pipeline(t.reopen().await, &target.url, c.clone());
        let replies = restarted.recover().await.unwrap();
        assert_eq!(replies.len(), 2, "{replies:#?}");
        assert_eq!(
            s.approval(interrupted).await.unwrap().unwrap().state,
            State::Unknown
        );
        assert_eq!(
            s.approval(waiting).await.unwrap().unwrap().state,
            State::Succeeded
        );
        assert_eq!(target.count(RETRY.0, RETRY.1), 1, "only the unclaimed one ran");
        assert!(
            restarted.recover().await.unwrap().is_empty(),
            "recovery is idempotent"
        );
        assert_eq!(target.count(RETRY.0, RETRY.1), 1);
        let r = say(&p, "console:carol", &format!("/approve a{interrupted}")).await;
        assert_eq!(r.text, format!("refused: a{interrupted} already executed"));
        t.cleanup().await;
    }
}

#[tokio::test]
async fn two_approvers_needed_when_count_is_two() {
    let t = TestStore::sqlite().await;
    let target = FakeTarget::start().await;
    let cfg = config("");
    let mut p = pipeline_with(&cfg, t.store.clone(), &target.url, clock());
    // Make `queue retry` need two people for this test.
    let mut cat = (*p.catalog).clone();
    for c in cat.commands.iter_mut().filter(|c| c.name == "queue retry") {
        c.approve.as_mut().unwrap().count = 2;
    }
    p.catalog = std::sync::Arc::new(cat);
    let id = say(&p, "console:alice", "/queue retry ai-analysis")
        .await
        .approval
        .unwrap();
    let r = say(&p, "console:bob", &format!("/approve a{id}")).await;
    assert_eq!(
        r.text,
        format!("a{id} approved by bob (1 of 2); waiting for 1 more")
    );
    assert_eq!(target.count(RETRY.0, RETRY.1), 0);
    let r = say(&p, "console:carol", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    assert_eq!(target.count(RETRY.0, RETRY.1), 1);
    t.cleanup().await;
}

/// Deciding from the console a request made in Slack queues the card's edit
/// in the decision's own transaction.
#[tokio::test]
async fn console_decisions_update_slack_cards_through_the_outbox() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let id = say_from(
            &p,
            "slack:U0ALICE",
            "/queue retry ai-analysis",
            slack_origin("U0ALICE"),
        )
        .await
        .approval
        .unwrap();
        let r = say(&p, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        let heads = t.store.outbox_heads("slack").await.unwrap();
        assert_eq!(heads.len(), 1, "one channel: {}", t.name);
        assert!(
            matches!(&heads[0].message.op, opsbot::store::OutOp::Post { key: Some(k), .. } if k == &format!("approval:{id}")),
            "the card is posted first: {:?}",
            heads[0].message.op
        );
        assert_eq!(
            t.store.outbox_counts().await.unwrap(),
            vec![("pending".to_string(), 2), ("superseded".to_string(), 1)],
            "card + its newest edit (the 'running' edit was superseded): {}",
            t.name
        );
        // A console-requested approval has no card: nothing more queued.
        let id2 = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        say(&p, "console:bob", &format!("/approve a{id2}")).await;
        assert_eq!(
            t.store.outbox_counts().await.unwrap(),
            vec![("pending".to_string(), 2), ("superseded".to_string(), 1)]
        );
        t.cleanup().await;
    }
}

/// Recovery is visible where the request was made: an interrupted execution's
/// card says its result is unknown, and an approval that expired while opsbot
/// was down is expired, not run.
#[tokio::test]
async fn recovery_updates_cards_and_expires_stale_approvals() {
    run_test(|t| {
        Box::pin(async move {
            let target = FakeTarget::start().await;
            let c = clock();
            let p = pipeline(t.store.clone(), &target.url, c.clone());
            let s = &t.store;
            let ask = || {
                say_from(
                    &p,
                    "slack:U0ALICE",
                    "/queue retry ai-analysis",
                    slack_origin("U0ALICE"),
                )
            };
            let interrupted = ask().await.approval.unwrap();
            let stale = ask().await.approval.unwrap();
            crash_between_claim_and_result(s, c.now_ms(), interrupted, stale).await;
            // Down for a day: the second approval's TTL (15 min) ran out unrun.
            c.advance(86_400_000);
            let restarted = pipeline(t.reopen().await, &target.url, c.clone());
            restarted.recover().await.unwrap();
            assert_eq!(
                s.approval(stale).await.unwrap().unwrap().state,
                State::Expired,
                "{}",
                t.name
            );
            assert_eq!(target.count(RETRY.0, RETRY.1), 0, "{}: nothing ran", t.name);
            let edits = pending_card_edits(s).await;
            let card = |id: i64| {
                edits
                    .iter()
                    .find(|(k, _)| *k == format!("approval:{id}"))
                    .map(|(_, b)| b.clone())
            };
            let unknown = card(interrupted).expect("the interrupted card is edited");
            assert!(
                unknown.contains("result unknown") && unknown.contains("check the target before retrying"),
                "{unknown}"
            );
            let expired = card(stale).expect("the stale card is edited");
            assert!(expired.contains("expired"), "{expired}");
            assert!(!expired.contains("\"action_id\""), "no buttons left: {expired}");
            let kinds = crate::support::audit_kinds(s).await;
            assert!(
                kinds.iter().filter(|k| *k == "approval.expired").count() == 1,
                "{kinds:?}"
            );
            let sources: Vec<(String, String)> = s
                .audit_records()
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.entry.kind, r.entry.source))
                .collect();
            assert!(
                sources.iter().all(|(k, src)| src
                    == if k == "approval.requested" {
                        "slack"
                    } else {
                        "system"
                    }),
                "recovery steps are the system's: {sources:?}"
            );
        })
    })
    .await;
}

/// The newest pending edit per card key: (key, body).
async fn pending_card_edits(s: &opsbot::store::Store) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for row in s.outbox_pending_for_tests("slack").await.unwrap() {
        if let opsbot::store::OutOp::Update { key } = &row.message.op {
            out.push((key.clone(), row.message.body.to_string()));
        }
    }
    out
}

/// Both approved by bob; `claimed` was claimed for execution and then the
/// process died; `approved` never started.
async fn crash_between_claim_and_result(s: &opsbot::store::Store, now: i64, claimed: i64, approved: i64) {
    for id in [claimed, approved] {
        s.add_vote(id, "bob", "console:bob", now).await.unwrap();
        assert!(s.approve_if_enough_votes(id, now).await.unwrap());
    }
    assert!(s
        .transition(claimed, State::Approved, State::Executing, now, None, None)
        .await
        .unwrap());
}

/// A second instance's recovery never takes a live instance's execution for
/// a crashed one; once that instance's heartbeat lapses, it does.
#[tokio::test]
async fn recovery_leaves_a_live_instances_executions_alone() {
    run_test(|t| {
        Box::pin(async move {
            let target = FakeTarget::start().await;
            let c = clock();
            let p = pipeline(t.store.clone(), &target.url, c.clone());
            let s = &t.store;
            let (running, unused) = two_retries(&p).await;
            s.heartbeat(c.now_ms(), c.now_ms() + 30_000).await.unwrap();
            crash_between_claim_and_result(s, c.now_ms(), running, unused).await;
            let other = pipeline(t.reopen().await, &target.url, c.clone());
            other.recover().await.unwrap();
            assert_eq!(
                s.approval(running).await.unwrap().unwrap().state,
                State::Executing,
                "{}: a live instance's execution was taken",
                t.name
            );
            c.advance(31_000);
            other.recover().await.unwrap();
            assert_eq!(
                s.approval(running).await.unwrap().unwrap().state,
                State::Unknown,
                "{}",
                t.name
            );
        })
    })
    .await;
}

/// The same pipeline with the catalog's `queue retry` pointed elsewhere (a
/// new release of the catalog between request and approval).
fn with_changed_retry(p: &opsbot::engine::Pipeline) -> opsbot::engine::Pipeline {
    let mut cat = (*p.catalog).clone();
    for c in cat.commands.iter_mut().filter(|c| c.name == "queue retry") {
        if let opsbot::catalog::Action::Http(h) = &mut c.action {
            h.path = "/api/queue/{queue}/clean".into();
        }
    }
    let mut changed = p.clone();
    changed.catalog = std::sync::Arc::new(cat);
    changed
}

/// An approval outlives a changed command no more: approving it is refused,
/// and an approved request whose command changed before it ran is not run.
#[tokio::test]
async fn a_changed_catalog_refuses_an_old_approval() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let changed = with_changed_retry(&p);
        let r = say(&changed, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}: {}", t.name, r.text);
        assert_eq!(
            r.text,
            format!("refused: a{id}: the command changed since it was requested; request it again")
        );
        assert!(target.hits.lock().unwrap().is_empty(), "nothing ran");
        assert_eq!(t.store.approval(id).await.unwrap().unwrap().state, State::Pending);
        let records = t.store.audit_records().await.unwrap();
        let last = &records.last().unwrap().entry;
        assert_eq!(
            (last.kind.as_str(), last.outcome.as_str(), last.person.as_str()),
            ("approval.refused", "command_changed", "bob"),
            "{}",
            t.name
        );
        // Rejecting it is still fine.
        let r = say(&changed, "console:bob", &format!("/reject a{id} stale")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);

        // Approved under the old catalog, run (after a restart) under the new one.
        let id = say(&p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap();
        let now = p.clock.now_ms();
        t.store.add_vote(id, "bob", "console:bob", now).await.unwrap();
        assert!(t.store.approve_if_enough_votes(id, now).await.unwrap());
        let restarted = with_changed_retry(&pipeline(t.reopen().await, &target.url, clock()));
        let replies = restarted.recover().await.unwrap();
        assert!(
            replies[0]
                .text
                .contains("the command changed since it was requested; request it again"),
            "{replies:?}"
        );
        assert!(target.hits.lock().unwrap().is_empty(), "{}: nothing ran", t.name);
        let a = t.store.approval(id).await.unwrap().unwrap();
        assert_eq!(a.state, State::Failed, "{}", t.name);
        assert!(a.result.unwrap().contains("definition"), "{}", t.name);
        let last = t.store.audit_records().await.unwrap().pop().unwrap().entry;
        assert_eq!(
            (last.kind.as_str(), last.outcome.as_str()),
            ("execution", "failed")
        );
        assert!(verify_audit(&t.store).await.is_ok());
        t.cleanup().await;
    }
}

/// Two approvals of `/queue retry ai-analysis` requested by alice.
async fn two_retries(p: &opsbot::engine::Pipeline) -> (i64, i64) {
    let ask = || async {
        say(p, "console:alice", "/queue retry ai-analysis")
            .await
            .approval
            .unwrap()
    };
    (ask().await, ask().await)
}
