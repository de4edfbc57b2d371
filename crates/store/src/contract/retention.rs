//! Retention and deletion: a finished run deleted with everything of it, a
//! live one refused; finished runs swept once past their organization's or
//! graph's retention; graph versions deleted when no run uses them.

use serde_json::json;

use super::Database;
use super::children::parent_waiting_on_child;
use super::fixtures::{final_step, graph, new_run, step};
use crate::{
    DEFAULT_ORG, DeliveryFilter, Entry, Hook, HookEvent, NewRun, RunKey, RunStatus, StepCommit, StoreError,
    Sweep, now_millis, sweep_expired,
};

/// A finished run goes with its transcript, its child runs, its hook
/// deliveries and its key; a live one, or a child on its own, is refused,
/// and so is a run that is not there.
pub async fn a_finished_run_is_deleted_with_everything_of_it_and_a_live_one_is_refused(
    database: &dyn Database,
) {
    let (store, other) = (database.open().await, database.open().await);
    parent_waiting_on_child(&*store).await;
    let refused = other.delete_run("p").await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict { detail, .. } if detail.contains("it is waiting: cancel it first")),
        "{refused}"
    );
    let refused = other.delete_run("c").await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict { detail, .. } if detail.contains("child run of p")),
        "{refused}"
    );
    store.commit_step(final_step("c", 1)).await.unwrap();
    let woken = store.run("p").await.unwrap();
    store.commit_step(final_step("p", woken.version)).await.unwrap();
    assert_eq!(other.delete_run("p").await.unwrap(), 2, "the parent and its child");
    for run_id in ["p", "c"] {
        assert!(matches!(store.run(run_id).await, Err(StoreError::NotFound(_))), "{run_id}");
        assert_eq!(store.transcript(run_id, 0, 10).await.unwrap_or_default(), []);
    }
    assert!(matches!(other.delete_run("p").await, Err(StoreError::NotFound(_))));

    // Its hook deliveries and its key go with it.
    store
        .add_hook(&Hook {
            hook_id: "h".into(),
            org: DEFAULT_ORG.into(),
            url: "http://127.0.0.1:9/".into(),
            events: vec![HookEvent::RunCompleted],
            graph_id: None,
            secret: "s".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    let keyed =
        |run_id: &str| NewRun { key: Some(RunKey::new("nightly")), ..new_run(DEFAULT_ORG, "review", run_id) };
    store.create_run(keyed("k1")).await.unwrap();
    store.commit_step(final_step("k1", 1)).await.unwrap();
    assert_eq!(store.deliveries(DEFAULT_ORG, &DeliveryFilter::default(), 10).await.unwrap().len(), 1);
    assert!(matches!(store.create_run(keyed("k2")).await, Err(StoreError::Duplicate { .. })));
    assert_eq!(store.delete_run("k1").await.unwrap(), 1);
    assert_eq!(store.deliveries(DEFAULT_ORG, &DeliveryFilter::default(), 10).await.unwrap(), []);
    store.create_run(keyed("k2")).await.unwrap();
}

/// Finished runs older than their retention go, a graph's rule holding for
/// its runs and the organization's for the others; live runs, recent ones
/// and other organizations' stay.
pub async fn finished_runs_past_their_retention_are_swept(database: &dyn Database) {
    let store = database.open().await;
    for org in ["acme", "globex"] {
        for graph_id in ["g", "audit"] {
            store.save_graph(org, &graph(graph_id)).await.unwrap();
        }
    }
    let now = now_millis();
    let day = 24 * 60 * 60 * 1_000;
    // (org, graph, run, days ago, finished)
    let runs = [
        ("acme", "g", "old", 40, true),
        ("acme", "g", "old-live", 40, false),
        ("acme", "g", "recent", 2, true),
        ("acme", "audit", "audit-old", 40, true),
        ("acme", "audit", "audit-ancient", 400, true),
        ("globex", "g", "theirs", 40, true),
    ];
    for (org, graph_id, run_id, days, finished) in runs {
        let at = now - days * day;
        store.create_run(NewRun { at, ..new_run(org, graph_id, run_id) }).await.unwrap();
        let mut commit =
            if finished { final_step(run_id, 1) } else { step(run_id, 1, "draft", json!(1), vec![]) };
        if !finished {
            commit.status = RunStatus::Waiting;
            commit.entries =
                vec![Entry::NodeWaiting { node_id: "draft".into(), prompt: None, actions: vec![] }];
        }
        commit.at = at;
        store.commit_step(commit).await.unwrap();
    }
    store.set_retention("acme", None, Some(30 * day)).await.unwrap();
    store.set_retention("acme", Some("audit"), Some(365 * day)).await.unwrap();
    store.set_retention("globex", None, Some(90 * day)).await.unwrap();
    store.set_retention("globex", Some("g"), Some(day)).await.unwrap();
    store.set_retention("globex", Some("g"), None).await.unwrap();
    assert_eq!(store.retention_rules().await.unwrap().len(), 3);

    assert_eq!(sweep_expired(&*store, now).await.unwrap(), 2);
    let mut left: Vec<String> =
        store.list_runs(&Default::default()).await.unwrap().into_iter().map(|run| run.run_id).collect();
    left.sort();
    assert_eq!(left, ["audit-old", "old-live", "recent", "theirs"]);
    assert_eq!(sweep_expired(&*store, now).await.unwrap(), 0, "nothing more");
}

/// A graph version no run uses is deleted; one a run uses is kept, and so
/// is the latest.
pub async fn a_graph_version_is_deleted_only_when_no_run_uses_it(database: &dyn Database) {
    let store = database.open().await;
    for _ in 0..3 {
        store.save_graph("acme", &graph("g")).await.unwrap();
    }
    store.create_run(new_run("acme", "g", "r")).await.unwrap();
    let used = store.delete_graph_version("acme", "g", 1).await.unwrap_err();
    assert!(matches!(&used, StoreError::Conflict { run_id, .. } if run_id == "r"), "{used}");
    let latest = store.delete_graph_version("acme", "g", 3).await.unwrap_err();
    assert!(matches!(&latest, StoreError::Invalid(why) if why.contains("is the latest")), "{latest}");
    store.delete_graph_version("acme", "g", 2).await.unwrap();
    assert!(matches!(store.graph("acme", "g", Some(2)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.delete_graph_version("acme", "g", 2).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.delete_graph_version("globex", "g", 1).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.save_graph("acme", &graph("g")).await.unwrap().version, 4, "no number given twice");
}

/// A sweep keeps a run whose key is still held, one with a hook delivery
/// still to be tried, and one with a child still live, and goes on past
/// them from batch to batch.
pub async fn a_sweep_keeps_runs_still_needed_and_goes_on_past_them(database: &dyn Database) {
    let store = database.open().await;
    parent_waiting_on_child(&*store).await;
    // The parent is over (a cancel commits it before its children): its child still waits.
    store.commit_step(final_step("p", 2)).await.unwrap();
    store
        .add_hook(&Hook {
            hook_id: "h".into(),
            org: DEFAULT_ORG.into(),
            url: "http://127.0.0.1:9/".into(),
            events: vec![HookEvent::RunFailed],
            graph_id: Some("review".into()),
            secret: "s".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    let now = now_millis();
    let keyed = NewRun {
        key: Some(RunKey::new("delivery-1").until(now + 60_000)),
        ..new_run(DEFAULT_ORG, "review", "keyed")
    };
    store.create_run(keyed).await.unwrap();
    store.commit_step(final_step("keyed", 1)).await.unwrap();
    store.create_run(new_run(DEFAULT_ORG, "review", "hooked")).await.unwrap();
    let failed = StepCommit {
        status: RunStatus::Failed,
        error: Some("boom".into()),
        entries: vec![Entry::RunFailed { error: "boom".into() }],
        ..final_step("hooked", 1)
    };
    store.commit_step(failed).await.unwrap();
    store.create_run(new_run(DEFAULT_ORG, "review", "plain")).await.unwrap();
    store.commit_step(final_step("plain", 1)).await.unwrap();

    let mut sweep = Sweep {
        org: DEFAULT_ORG.into(),
        graph_id: None,
        except_graphs: Vec::new(),
        finished_before: now_millis() + 1_000,
        now: now_millis(),
        after: None,
        limit: 1,
    };
    let first = store.delete_finished_runs(&sweep).await.unwrap();
    assert_eq!((first.deleted, first.looked_at), (0, 1), "the parent of a live child is kept");
    assert_eq!(first.last.as_ref().map(|(_, run_id)| run_id.as_str()), Some("p"));
    sweep.after = first.last;
    let second = store.delete_finished_runs(&sweep).await.unwrap();
    assert_eq!((second.deleted, second.looked_at), (1, 1), "the next batch goes on past it");
    sweep.after = second.last;
    assert_eq!(store.delete_finished_runs(&sweep).await.unwrap().looked_at, 0, "nothing after");
    for kept in ["p", "c", "keyed", "hooked"] {
        assert!(store.run(kept).await.is_ok(), "{kept} is kept");
    }
    assert!(matches!(store.run("plain").await, Err(StoreError::NotFound(_))));
    // Once the key is let go, the keyed run goes too.
    sweep.now = now + 60_000;
    sweep.after = None;
    sweep.limit = 10;
    assert_eq!(store.delete_finished_runs(&sweep).await.unwrap().deleted, 1);
    assert!(matches!(store.run("keyed").await, Err(StoreError::NotFound(_))));
}
