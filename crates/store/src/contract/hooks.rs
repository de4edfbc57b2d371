//! Run-event hooks: the deliveries a commit makes, in its own transaction,
//! for the hooks that hear its events; deliveries claimed by one process at
//! a time, tried again and given up.

use serde_json::json;

use super::Database;
use super::fixtures::{final_step, graph, new_run, step};
use crate::{
    DeliveryCursor, DeliveryFilter, DeliveryStatus, Entry, Hook, HookAttempt, HookEvent, RunStatus,
    StoreError, delivery_id, now_millis,
};

/// A hook of `org` hearing `events`, of `graph_id` only when given.
fn hook(org: &str, hook_id: &str, events: &[HookEvent], graph_id: Option<&str>) -> Hook {
    Hook {
        hook_id: hook_id.into(),
        org: org.into(),
        url: format!("http://127.0.0.1:9/{hook_id}"),
        events: events.to_vec(),
        graph_id: graph_id.map(str::to_owned),
        secret: format!("secret of {hook_id}"),
        created_at: now_millis(),
    }
}

/// An attempt the receiver answered with `status_code`.
fn attempt(status_code: u16) -> HookAttempt {
    HookAttempt {
        at: now_millis(),
        status_code: Some(status_code),
        error: (status_code >= 300).then(|| format!("answered {status_code}")),
        duration_ms: 3,
    }
}

/// Each event a commit appends makes one delivery per hook of its run's
/// organization (and graph) that hears it, with what the event says; a
/// commit refused makes none, and another organization's hooks hear nothing.
pub async fn a_commit_makes_a_delivery_for_each_hook_that_hears_each_of_its_events(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    for graph_id in ["g", "h"] {
        store.save_graph("acme", &graph(graph_id)).await.unwrap();
    }
    store.save_graph("globex", &graph("g")).await.unwrap();
    store.add_hook(&hook("acme", "all", &HookEvent::ALL, None)).await.unwrap();
    store.add_hook(&hook("acme", "done", &[HookEvent::RunCompleted], None)).await.unwrap();
    store.add_hook(&hook("acme", "only_h", &HookEvent::ALL, Some("h"))).await.unwrap();
    store.add_hook(&hook("globex", "theirs", &HookEvent::ALL, None)).await.unwrap();
    assert!(matches!(
        other.add_hook(&hook("acme", "done", &[HookEvent::RunFailed], None)).await,
        Err(StoreError::Invalid(_))
    ));
    let ids: Vec<String> = other.hooks("acme").await.unwrap().into_iter().map(|hook| hook.hook_id).collect();
    assert_eq!(ids, ["all", "done", "only_h"]);
    assert_eq!(other.hooks("acme").await.unwrap()[1].events, [HookEvent::RunCompleted]);

    store.create_run(new_run("acme", "g", "r")).await.unwrap();
    let failed = Entry::NodeFailed { node_id: "draft".into(), attempt: 1, error: "boom".into() };
    let waiting =
        Entry::NodeWaiting { node_id: "review".into(), prompt: Some("ok?".into()), actions: vec![] };
    store.commit_step(step("r", 1, "draft", json!(1), vec![failed])).await.unwrap();
    let mut parked = step("r", 2, "review", json!(2), vec![waiting]);
    parked.status = RunStatus::Waiting;
    store.commit_step(parked).await.unwrap();
    // Refused (stale): its run.completed is never delivered.
    assert!(matches!(store.commit_step(final_step("r", 2)).await, Err(StoreError::Conflict { .. })));
    store.commit_step(final_step("r", 3)).await.unwrap();

    let listed = other.deliveries("acme", &DeliveryFilter::default(), 100).await.unwrap();
    let mut made: Vec<(String, HookEvent, u64)> =
        listed.iter().map(|d| (d.hook_id.clone(), d.event, d.seq)).collect();
    made.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    assert_eq!(
        made,
        [
            ("all".into(), HookEvent::NodeFailed, 2),
            ("all".into(), HookEvent::RunWaiting, 3),
            ("all".into(), HookEvent::RunCompleted, 4),
            ("done".into(), HookEvent::RunCompleted, 4),
        ]
    );
    let waited = listed.iter().find(|d| d.event == HookEvent::RunWaiting).unwrap();
    assert_eq!(waited.delivery_id, delivery_id("all", "r", 3));
    assert_eq!(
        (waited.status, waited.attempts.len(), waited.run_id.as_str()),
        (DeliveryStatus::Pending, 0, "r")
    );
    assert_eq!(waited.payload["type"], "run.waiting");
    assert_eq!(waited.payload["data"]["node_id"], "review");
    assert_eq!(waited.payload["data"]["status"], "waiting");
    assert_eq!(other.deliveries("globex", &DeliveryFilter::default(), 100).await.unwrap(), []);
    let of_done = DeliveryFilter { hook_id: Some("done".into()), ..DeliveryFilter::default() };
    assert_eq!(other.deliveries("acme", &of_done, 100).await.unwrap().len(), 1);

    // Newest first, a page at a time.
    let first = other.deliveries("acme", &DeliveryFilter::default(), 3).await.unwrap();
    let last = &first[2];
    let before = DeliveryFilter {
        before: Some(DeliveryCursor { created_at: last.created_at, delivery_id: last.delivery_id.clone() }),
        ..DeliveryFilter::default()
    };
    let rest = other.deliveries("acme", &before, 3).await.unwrap();
    let mut paged: Vec<String> = first.iter().chain(&rest).map(|d| d.delivery_id.clone()).collect();
    assert_eq!(paged.len(), 4);
    paged.sort();
    paged.dedup();
    assert_eq!(paged.len(), 4, "each once");
}

/// A due delivery is claimed by one process until its hold lapses; an
/// attempt that fails schedules the next, one that lands or is the last
/// ends it; removing a hook fails its pending deliveries.
pub async fn deliveries_are_claimed_by_one_process_tried_again_and_ended(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    store.save_graph("acme", &graph("g")).await.unwrap();
    store
        .add_hook(&hook("acme", "h1", &[HookEvent::RunCompleted, HookEvent::RunCancelled], None))
        .await
        .unwrap();
    store.add_hook(&hook("acme", "h2", &[HookEvent::RunCompleted], None)).await.unwrap();
    for run_id in ["r1", "r2"] {
        store.create_run(new_run("acme", "g", run_id)).await.unwrap();
        store.commit_step(final_step(run_id, 1)).await.unwrap();
    }
    let now = now_millis();
    let claimed = store.claim_deliveries(now, 30_000, 3).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        claimed
            .iter()
            .all(|c| c.url.ends_with(&c.delivery.hook_id) && c.secret.ends_with(&c.delivery.hook_id))
    );
    let rest = other.claim_deliveries(now, 30_000, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "the others are held");
    assert_eq!(other.claim_deliveries(now + 29_000, 30_000, 10).await.unwrap(), [], "all held");

    let (landed, failing) = (&claimed[0].delivery.delivery_id, &claimed[1].delivery.delivery_id);
    assert!(store.record_attempt(&claimed[0], &attempt(204), None).await.unwrap());
    assert!(store.record_attempt(&claimed[1], &attempt(500), Some(now + 1_000)).await.unwrap());
    // A late record of an attempt at a delivery that is over changes nothing.
    assert!(!store.record_attempt(&claimed[0], &attempt(500), Some(now)).await.unwrap());
    let again = other.claim_deliveries(now + 1_000, 30_000, 10).await.unwrap();
    assert_eq!(again.iter().map(|c| &c.delivery.delivery_id).collect::<Vec<_>>(), [failing]);
    assert_eq!(again[0].delivery.attempts.len(), 1);
    assert!(store.record_attempt(&again[0], &attempt(503), None).await.unwrap());

    // Held past its hold without a record: taken again, and the first
    // claimant's late record is dropped, the second's kept.
    let lapsed = other.claim_deliveries(now + 31_000, 30_000, 10).await.unwrap();
    assert_eq!(lapsed.len(), 2, "{lapsed:?}");
    let first = &claimed[2];
    let taken = lapsed.iter().find(|c| c.delivery.delivery_id == first.delivery.delivery_id).unwrap();
    assert!(!store.record_attempt(first, &attempt(204), None).await.unwrap(), "its claim lapsed");
    assert!(other.record_attempt(taken, &attempt(500), Some(now + 40_000)).await.unwrap());
    let removed_hook = lapsed.iter().find(|c| c.delivery.delivery_id != first.delivery.delivery_id).unwrap();
    assert!(other.remove_hook("acme", &removed_hook.delivery.hook_id).await.unwrap());
    assert!(!other.remove_hook("acme", &removed_hook.delivery.hook_id).await.unwrap());

    let all = store.deliveries("acme", &DeliveryFilter::default(), 10).await.unwrap();
    let by_id = |id: &str| all.iter().find(|d| d.delivery_id == id).unwrap();
    assert_eq!((by_id(landed).status, by_id(landed).attempts.len()), (DeliveryStatus::Delivered, 1));
    assert_eq!(by_id(landed).attempts[0].status_code, Some(204));
    assert_eq!((by_id(failing).status, by_id(failing).attempts.len()), (DeliveryStatus::Failed, 2));
    assert_eq!(by_id(failing).attempts[1].error.as_deref(), Some("answered 503"));
    assert_eq!(by_id(failing).next_attempt_at, None);
    let removed = by_id(&removed_hook.delivery.delivery_id);
    assert_eq!((removed.status, removed.next_attempt_at), (DeliveryStatus::Failed, None));
    let retried = by_id(&first.delivery.delivery_id);
    assert_eq!(
        (retried.attempts.len(), retried.attempts[0].status_code),
        (1, Some(500)),
        "one record, the holder's"
    );
    let pending = DeliveryFilter { status: Some(DeliveryStatus::Pending), ..DeliveryFilter::default() };
    let pending = store.deliveries("acme", &pending, 10).await.unwrap();
    assert!(pending.iter().all(|d| d.hook_id != removed_hook.delivery.hook_id), "{pending:?}");
    assert_eq!(other.claim_deliveries(now + 100_000, 30_000, 10).await.unwrap().len(), pending.len());

    // Those over go once old enough, a batch at a time; the pending stay.
    let over = all.iter().filter(|d| d.status != DeliveryStatus::Pending).count();
    assert_eq!(store.delete_old_deliveries(0, 10).await.unwrap(), 0, "none that old");
    assert_eq!(store.delete_old_deliveries(i64::MAX, 1).await.unwrap(), 1);
    assert_eq!(other.delete_old_deliveries(i64::MAX, 10).await.unwrap(), over - 1);
    let left = store.deliveries("acme", &DeliveryFilter::default(), 10).await.unwrap();
    assert!(left.iter().all(|d| d.status == DeliveryStatus::Pending) && left.len() == pending.len());
}
