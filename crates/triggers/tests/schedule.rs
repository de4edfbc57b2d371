//! Scheduled runs on a real SQLite file shared by two runners, as two
//! processes would share it: each due time fires exactly once, at the time
//! of the runners' clock.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use roomkit_graph::{Checks, Edge, Graph, Handlers, Limits, ManualClock, Node, Trigger};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{RunFilter, now_millis};
use roomkit_graph_triggers::{Schedule, ScheduleError, Scheduler, TriggerCheck};
use serde_json::json;

fn scheduled(id: &str, cron: &str) -> Graph {
    let trigger =
        serde_json::from_value(json!({"type": "scheduled", "schedule": {"cron": cron, "timezone": "UTC"}}))
            .expect("a scheduled trigger");
    let mut graph = Graph::new(id, id, trigger);
    graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")]).expect("unique ids");
    graph.add_edge(Edge::new("start", "end"));
    graph
}

/// 2031-01-01T00:00:00Z, in seconds since the Unix epoch.
const NEW_YEAR: u64 = 1_924_992_000;

/// How long a test waits for what must happen before it fails.
const HANG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn two_schedulers_on_one_database_fire_each_due_time_once_on_the_runners_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    // Ninety seconds before the new year, on a clock that moves only when told.
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(NEW_YEAR - 90));
    let runner = || {
        Runner::builder(SqliteStore::open(&path).unwrap(), Handlers::builtin()).clock(clock.clone()).build()
    };
    let (first, second) = (runner(), runner());
    // Due at 00:00, 00:01 and 00:02 on new year's day, and at midsummer.
    first.save_graph_in("acme", &scheduled("new-year", "0-2 0 1 1 *")).await.unwrap();
    first.save_graph_in("acme", &scheduled("midsummer", "0 0 21 6 *")).await.unwrap();
    let mut manual = scheduled("manual", "* * * * * *");
    manual.trigger = Trigger::manual();
    first.save_graph_in("globex", &manual).await.unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for runner in [first.clone(), second.clone()] {
        let mut stopped = stopped.clone();
        let scheduler = Scheduler::new(runner, Duration::from_secs(30));
        loops.push(tokio::spawn(scheduler.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    let acme = RunFilter { org: Some("acme".into()), ..Default::default() };
    let ticks = |count: usize| {
        let clock = clock.clone();
        async move {
            for _ in 0..count {
                clock.advance(Duration::from_secs(30));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Tick by tick until the three due times have fired (by 00:02 on the clock).
    tokio::time::timeout(HANG, async {
        while first.store().list_runs(&acme).await.unwrap().len() < 3 {
            ticks(1).await;
        }
    })
    .await
    .expect("the due times fire as the clock passes them");
    // Both schedulers look a few times more: nothing fires again.
    ticks(6).await;
    stop.send(true).unwrap();
    for handle in loops {
        handle.await.unwrap();
    }

    let runs = first.store().list_runs(&acme).await.unwrap();
    assert!(runs.iter().all(|run| run.graph_id == "new-year"), "only the graph due at the new year ran");
    let mut due = BTreeSet::new();
    for run in &runs {
        let events = first.store().transcript(&run.run_id, 0, 1).await.unwrap();
        let serde_json::Value::Object(started) = serde_json::to_value(&events[0].entry).unwrap() else {
            panic!("an entry is an object")
        };
        let at = started["trigger"]["scheduled_at"].as_str().unwrap().to_owned();
        assert!(due.insert(at.clone()), "the due time {at} fired twice");
    }
    assert_eq!(
        due.into_iter().collect::<Vec<_>>(),
        ["2031-01-01T00:00:00+00:00", "2031-01-01T00:01:00+00:00", "2031-01-01T00:02:00+00:00"]
    );
    for run in &runs {
        let done = first.wait(&run.run_id).await.unwrap();
        assert!(done.status.is_final(), "{done:?}");
        assert!(done.created_at >= 1_000 * i64::try_from(NEW_YEAR).unwrap(), "started on the runner's clock");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_due_time_already_fired_by_another_process_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let first = Runner::new(SqliteStore::open(&path).unwrap(), Handlers::builtin());
    let second = Runner::new(SqliteStore::open(&path).unwrap(), Handlers::builtin());
    first.save_graph_in("acme", &scheduled("minutely", "* * * * *")).await.unwrap();
    let mut one = Scheduler::new(first, Duration::from_secs(60));
    let mut other = Scheduler::new(second, Duration::from_secs(60));
    // Both look at the same three minutes.
    let later = now_millis() + 3 * 60_000;
    let fired = one.fire_due(later).await.unwrap();
    assert_eq!(fired.len(), 3);
    assert!(other.fire_due(later).await.unwrap().is_empty(), "the second process fires nothing");
    // Looking again at the same window fires nothing either.
    assert!(one.fire_due(later).await.unwrap().is_empty());
}

#[test]
fn broken_schedules_are_named_precisely() {
    let trigger = |schedule| {
        serde_json::from_value::<Trigger>(json!({"type": "scheduled", "schedule": schedule})).unwrap()
    };
    let check = |trigger: &Trigger| Schedule::of(trigger).map(drop);
    assert_eq!(check(&trigger(json!({"timezone": "UTC"}))), Err(ScheduleError::MissingCron));
    assert!(matches!(
        check(&trigger(json!({"cron": "61 * * * *"}))),
        Err(ScheduleError::BadCron { cron, .. }) if cron == "61 * * * *"
    ));
    assert_eq!(
        check(&trigger(json!({"cron": "* * * * *", "timezone": "Nowhere/Town"}))),
        Err(ScheduleError::UnknownTimeZone("Nowhere/Town".into()))
    );
    // Without a time zone a schedule runs in UTC.
    let utc = Schedule::of(&trigger(json!({"cron": "0 12 * * *"}))).unwrap().unwrap();
    assert_eq!(utc.due_between(0, 86_400_000, 5), [43_200_000]);
    // A long gap fires only the latest due times.
    assert_eq!(utc.due_between(0, 30 * 86_400_000, 2).len(), 2);
}

#[test]
fn the_trigger_check_reports_a_broken_schedule_after_the_graphs_own_mistakes() {
    let mut graph = scheduled("broken", "61 * * * *");
    graph.add_node(Node::new("island", "log")).unwrap();
    let found = Checks::new().with(TriggerCheck).check(&graph, &Limits::default());
    let rows: Vec<(&str, Option<&str>, Option<&str>)> =
        found.errors.iter().map(|e| (e.code.as_str(), e.node.as_deref(), e.field.as_deref())).collect();
    assert_eq!(
        rows,
        [("unreachable", Some("island"), None), ("invalid_trigger", None, Some("trigger.schedule.cron"))]
    );
    let reason = Schedule::of(&graph.trigger).err().map(|error| error.to_string());
    assert_eq!(Some(&found.errors[1].message), reason.as_ref());

    // A schedule that parses, or a trigger that is not scheduled, passes.
    let checks = Checks::new().with(TriggerCheck);
    assert!(checks.check(&scheduled("daily", "0 12 * * *"), &Limits::default()).is_valid());
    graph.trigger = Trigger::manual();
    assert_eq!(checks.check(&graph, &Limits::default()).errors.len(), 1);
}
