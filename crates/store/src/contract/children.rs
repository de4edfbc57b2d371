//! Child runs: opened in the same transaction as the parent's step that
//! starts them, listed by their parent, and setting their parent going
//! again, in the transaction of their last step, when they are over.

use serde_json::json;

use super::Database;
use super::fixtures::{final_step, graph, new_run, start_run, step};
use crate::{
    DEFAULT_ORG, Entry, NewRun, ParentLink, ParentStep, RunFilter, RunStatus, StepCommit, Store, StoreError,
};

/// The parent's step onto subgraph node `check` that starts child `child`:
/// the parent waits on it.
pub(super) fn starting_step(parent: &str, expected_version: u64, child: &str) -> StepCommit {
    StepCommit {
        writes: Vec::new(),
        current_node_id: Some("check".into()),
        status: RunStatus::Waiting,
        entries: vec![Entry::ChildStarted {
            runs_node: false,
            node_id: "check".into(),
            run_id: child.into(),
            graph_id: "review".into(),
            graph_version: 1,
        }],
        ..step(parent, expected_version, "check", json!(null), Vec::new())
    }
}

/// Child `child` of `parent`, opened with the parent's step from `expected_version`.
fn child_run(parent: &str, expected_version: u64, child: &str) -> NewRun {
    let commit = starting_step(parent, expected_version, child);
    NewRun {
        parent: Some(ParentStep { node_id: "check".into(), runs_node: false, commit }),
        ..new_run(DEFAULT_ORG, "review", child)
    }
}

/// A parent `p` waiting on its child `c`, both of graphs saved.
pub(super) async fn parent_waiting_on_child(store: &dyn Store) {
    store.save_graph(DEFAULT_ORG, &graph("publish")).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap();
    start_run(store, "publish", "p").await;
    let child = store.create_run(child_run("p", 1, "c")).await.unwrap();
    assert_eq!(
        child.parent,
        Some(ParentLink { run_id: "p".into(), node_id: "check".into(), runs_node: false })
    );
}

/// A child opened with its parent's step: the parent waits on it with a
/// `child_started` entry, the child knows its parent, and the parent lists it.
pub async fn a_child_opens_with_the_step_of_its_parent_that_starts_it(database: &dyn Database) {
    let store = database.open().await;
    parent_waiting_on_child(&*store).await;
    let parent = store.run("p").await.unwrap();
    assert_eq!(
        (parent.status, parent.version, parent.current_node_id.as_deref()),
        (RunStatus::Waiting, 2, Some("check"))
    );
    let transcript = store.transcript("p", 0, 10).await.unwrap();
    assert!(matches!(&transcript.last().unwrap().entry, Entry::ChildStarted { run_id, .. } if run_id == "c"));
    let (child, _) = store.load_run("c").await.unwrap();
    assert_eq!(
        child.parent,
        Some(ParentLink { run_id: "p".into(), node_id: "check".into(), runs_node: false })
    );
    assert_eq!(store.run("p").await.unwrap().parent, None);

    // Listed by their parent, and only them.
    start_run(&*store, "review", "other").await;
    let filter = RunFilter { parent_run_id: Some("p".into()), ..RunFilter::default() };
    let children: Vec<String> =
        store.list_runs(&filter).await.unwrap().into_iter().map(|run| run.run_id).collect();
    assert_eq!(children, ["c"]);

    // A child that runs its parent's node itself says so, read one way or another.
    start_run(&*store, "publish", "p2").await;
    let NewRun { parent, .. } = child_run("p2", 1, "c2");
    let parent = parent.map(|step| ParentStep { runs_node: true, ..step });
    store.create_run(NewRun { parent, ..new_run(DEFAULT_ORG, "publish", "c2") }).await.unwrap();
    let link = ParentLink { run_id: "p2".into(), node_id: "check".into(), runs_node: true };
    assert_eq!(store.run("c2").await.unwrap().parent, Some(link.clone()));
    let filter = RunFilter { parent_run_id: Some("p2".into()), ..RunFilter::default() };
    assert_eq!(store.list_runs(&filter).await.unwrap()[0].parent, Some(link));
}

/// A parent's step computed from a version it has left conflicts, and the
/// child that came with it is not opened.
pub async fn a_parent_that_moved_opens_no_child(database: &dyn Database) {
    let store = database.open().await;
    parent_waiting_on_child(&*store).await;
    // A second child from the parent's old version: refused, and not opened.
    let refused = store.create_run(child_run("p", 1, "c2")).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { .. }), "{refused:?}");
    assert!(matches!(store.run("c2").await, Err(StoreError::NotFound(_))));
    assert_eq!(store.run("p").await.unwrap().version, 2);
}

/// A child's last step sets its waiting parent running, with a
/// `child_finished` entry, in the same transaction.
pub async fn a_child_that_is_over_sets_its_waiting_parent_going(database: &dyn Database) {
    let store = database.open().await;
    parent_waiting_on_child(&*store).await;
    let (child, _) = store.commit_step(final_step("c", 1)).await.unwrap();
    assert_eq!(child.status, RunStatus::Completed);
    let parent = store.run("p").await.unwrap();
    assert_eq!((parent.status, parent.version), (RunStatus::Running, 3));
    let transcript = store.transcript("p", 0, 10).await.unwrap();
    assert_eq!(
        transcript.last().unwrap().entry,
        Entry::ChildFinished { node_id: "check".into(), run_id: "c".into(), status: RunStatus::Completed }
    );
}

/// A child that ends after its parent was cancelled leaves the parent as it is.
pub async fn a_child_over_after_its_parent_moved_on_changes_nothing_of_it(database: &dyn Database) {
    let store = database.open().await;
    parent_waiting_on_child(&*store).await;
    let cancel = StepCommit {
        status: RunStatus::Cancelled,
        current_node_id: Some("check".into()),
        writes: Vec::new(),
        entries: vec![Entry::RunCancelled { reason: None }],
        ..step("p", 2, "check", json!(null), Vec::new())
    };
    store.commit_step(cancel).await.unwrap();
    let failed = StepCommit {
        status: RunStatus::Failed,
        error: Some("boom".into()),
        writes: Vec::new(),
        entries: vec![Entry::RunFailed { error: "boom".into() }],
        ..step("c", 1, "draft", json!(null), Vec::new())
    };
    store.commit_step(failed).await.unwrap();
    let parent = store.run("p").await.unwrap();
    assert_eq!((parent.status, parent.version), (RunStatus::Cancelled, 3));
}
