//! `roomkit-graph worker`: a run whose process died while it waited on a timer
//! is finished by a worker, which then stops cleanly on SIGTERM; two workers on
//! one database (a SQLite file, or a PostgreSQL database as workers on several
//! machines share it) finish the runs of killed processes, each step once.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PAUSE: &str = r#"{"id": "pause", "name": "Pause", "trigger": {"type": "manual"},
 "nodes": [{"id": "start", "type": "start"},
           {"id": "wait", "type": "function", "config": {"action": "delay", "duration": "5s"}},
           {"id": "end", "type": "end"}],
 "edges": [{"source": "start", "target": "wait"}, {"source": "wait", "target": "end"}]}"#;

fn command(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomkit-graph"));
    command.arg("--database").arg(db).args(args).stdin(Stdio::null());
    command
}

fn output(db: &Path, args: &[&str]) -> Output {
    command(db, args).output().expect("the binary runs")
}

/// Polls `runs --status STATUS` until it lists a run.
fn until_listed(db: &Path, status: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = String::from_utf8_lossy(&output(db, &["runs", "--status", status]).stdout).into_owned();
        if let Some(line) = listed.lines().next() {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no run became {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process the test started: killed and reaped when dropped, so that none
/// outlives a test that fails before stopping it.
struct Process(Child);

impl std::ops::Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A process stopped already only has its status read again.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stop(mut child: Process) -> std::process::ExitStatus {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    child.wait().expect("the worker exits")
}

#[test]
fn a_worker_finishes_a_run_whose_process_died_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("runs.db");
    let graph = dir.path().join("pause.json");
    std::fs::write(&graph, PAUSE).expect("the graph is written");

    // The process that started the run dies while the run waits on its timer
    // (or, on a slow machine, just after the timer fired and it took the run
    // back: then its short lease lets the worker take over soon).
    let mut starter = command(&db, &["--lease", "1s", "run", graph.to_str().expect("UTF-8 path")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Process)
        .expect("run starts");
    let waiting = until_listed(&db, "waiting");
    starter.kill().expect("SIGKILL the starter");
    starter.wait().expect("the starter is gone");

    let worker = command(&db, &["worker", "--poll", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Process)
        .expect("the worker starts");
    let completed = until_listed(&db, "completed");
    assert_eq!(completed.split_whitespace().next(), waiting.split_whitespace().next());

    let status = stop(worker);
    assert!(status.success(), "the worker did not stop cleanly: {status}");
}

/// start → s1..s20 → a 2 s timer → t1..t20 → end: the steps of the chain. The
/// timer is long enough that a process killed a few steps in never gets past
/// it first, however busy the machine.
fn long_chain() -> (String, Vec<String>) {
    let mut steps: Vec<String> = (1..=20).map(|i| format!("s{i}")).collect();
    steps.push("pause".to_owned());
    steps.extend((1..=20).map(|i| format!("t{i}")));
    let nodes: Vec<Value> = std::iter::once(serde_json::json!({"id": "start", "type": "start"}))
        .chain(steps.iter().map(|id| match id.as_str() {
            "pause" => serde_json::json!({"id": id, "type": "function",
                "config": {"action": "delay", "duration": "2s"}}),
            _ => serde_json::json!({"id": id, "type": "function",
                "config": {"action": "set_context", "values": {"step": id}}}),
        }))
        .chain([serde_json::json!({"id": "end", "type": "end"})])
        .collect();
    let order: Vec<&str> =
        std::iter::once("start").chain(steps.iter().map(String::as_str)).chain(["end"]).collect();
    let edges: Vec<Value> =
        order.windows(2).map(|pair| serde_json::json!({"source": pair[0], "target": pair[1]})).collect();
    let graph = serde_json::json!({"id": "chain", "name": "Chain", "trigger": {"type": "manual"},
        "nodes": nodes, "edges": edges});
    let all = order.iter().map(|id| (*id).to_owned()).collect();
    (graph.to_string(), all)
}

/// The runs of the database, as `runs --json` lists them.
fn listed(db: &Path) -> Vec<Value> {
    let output = output(db, &["--json", "runs"]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a run as JSON"))
        .collect()
}

#[test]
fn two_workers_finish_the_runs_of_killed_processes_with_every_step_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    finish_the_runs_of_killed_processes(dir.path(), &dir.path().join("runs.db"));
}

#[test]
fn two_workers_sharing_a_postgres_database_finish_the_runs_of_killed_processes_with_every_step_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = roomkit_graph_pgtest::database();
    finish_the_runs_of_killed_processes(dir.path(), Path::new(&url));
}

/// Starts runs on `db` whose processes are killed a few steps in, then two
/// workers on `db` finish them: each step once, no gap, one end each.
fn finish_the_runs_of_killed_processes(dir: &Path, db: &Path) {
    const RUNS: usize = 6;
    let graph = dir.join("chain.json");
    let (text, nodes) = long_chain();
    std::fs::write(&graph, text).expect("the graph is written");

    // Each run's process is killed a few steps in, holding the run's lease.
    for n in 0..RUNS {
        let input = format!("{{\"n\": {n}}}");
        let mut starter = command(db, &["--lease", "1s", "run", graph.to_str().expect("UTF-8 path")])
            .args(["--input", &input])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map(Process)
            .expect("run starts");
        let stdout = starter.stdout.take().expect("the run's stdout");
        let lines = BufReader::new(stdout).lines().take(4 + n).count();
        assert_eq!(lines, 4 + n, "the run printed too little before it was killed");
        starter.kill().expect("SIGKILL the starter");
        starter.wait().expect("the starter is gone");
    }
    let runs = listed(db);
    assert_eq!(runs.len(), RUNS);
    let interrupted = runs.iter().filter(|run| run["status"] != "completed").count();
    assert_eq!(interrupted, RUNS, "some runs finished before their process was killed");
    // A run killed mid-chain is still held by its dead process until its
    // lease expires; one that got to its timer first is parked, held by nobody.
    assert!(
        runs.iter().filter(|run| run["status"] == "running").all(|run| run["owner"].is_string()),
        "the killed processes' leases hold until they expire: {runs:?}"
    );
    assert!(runs.iter().all(|run| run["status"] == "running" || run["status"] == "waiting"), "{runs:?}");

    let workers: Vec<Process> = (0..2)
        .map(|_| {
            command(db, &["--lease", "1s", "worker", "--poll", "100ms"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Process)
                .expect("a worker starts")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(db).iter().any(|run| run["status"] != "completed") {
        assert!(Instant::now() < deadline, "the workers did not finish the runs: {:?}", listed(db));
        std::thread::sleep(Duration::from_millis(100));
    }
    for worker in workers {
        let status = stop(worker);
        assert!(status.success(), "a worker did not stop cleanly: {status}");
    }

    for run in listed(db) {
        let run_id = run["run_id"].as_str().expect("a run id");
        let shown = output(db, &["--json", "show", run_id]);
        let events: Vec<Value> = String::from_utf8_lossy(&shown.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("an event as JSON"))
            .collect();
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "gap in run {run_id}");
        let of_type = |kind: &str| -> Vec<&str> {
            events.iter().filter(|e| e["type"] == kind).filter_map(|e| e["node_id"].as_str()).collect()
        };
        assert_eq!(of_type("node_completed"), nodes, "steps of run {run_id}");
        assert_eq!(of_type("node_started"), nodes, "started steps of run {run_id}");
        let ends = events.iter().filter(|e| e["type"] == "run_completed").count();
        assert_eq!(ends, 1, "run {run_id}");
    }
}

/// start → a 15 s timer (long enough for every starter to park its run on a busy machine before the first timer fires and its chain takes the write lock) → s1..s`steps` → end: the nodes of the chain after the timer.
fn timer_then_chain(steps: usize) -> (String, Vec<String>) {
    let work: Vec<String> = (1..=steps).map(|i| format!("s{i}")).collect();
    let nodes: Vec<Value> = [
        serde_json::json!({"id": "start", "type": "start"}),
        serde_json::json!({"id": "pause", "type": "function", "config": {"action": "delay", "duration": "15s"}}),
    ]
    .into_iter()
    .chain(work.iter().map(|id| {
        serde_json::json!({"id": id, "type": "function", "config": {"action": "set_context", "values": {"step": id}}})
    }))
    .chain([serde_json::json!({"id": "end", "type": "end"})])
    .collect();
    let order: Vec<&str> =
        ["start", "pause"].into_iter().chain(work.iter().map(String::as_str)).chain(["end"]).collect();
    let edges: Vec<Value> =
        order.windows(2).map(|pair| serde_json::json!({"source": pair[0], "target": pair[1]})).collect();
    let graph = serde_json::json!({"id": "chain", "name": "Chain", "trigger": {"type": "manual"},
        "nodes": nodes, "edges": edges});
    (graph.to_string(), order.iter().map(|id| (*id).to_owned()).collect())
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    i64::try_from(since.as_millis()).expect("a time in range")
}

/// Polls the runs of `db` until `done` holds for them, for up to `within`.
fn until_runs(db: &Path, within: Duration, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let runs = listed(db);
        if done(&runs) {
            return runs;
        }
        assert!(Instant::now() < deadline, "{what}: {runs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_worker_restarted_with_its_id_takes_back_its_runs_at_once_and_a_second_live_one_is_refused() {
    const RUNS: usize = 4;
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("runs.db");
    let graph = dir.path().join("chain.json");
    let (text, nodes) = timer_then_chain(600);
    std::fs::write(&graph, text).expect("the graph is written");

    // The processes that start the runs die while the runs wait on their timers.
    let starters: Vec<Process> = (0..RUNS)
        .map(|_| {
            command(&db, &["run", graph.to_str().expect("UTF-8 path")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Process)
                .expect("run starts")
        })
        .collect();
    until_runs(&db, Duration::from_secs(20), "the runs did not park", |runs| {
        runs.len() == RUNS && runs.iter().all(|run| run["status"] == "waiting")
    });
    for mut starter in starters {
        starter.kill().expect("SIGKILL the starter");
        starter.wait().expect("the starter is gone");
    }

    // Worker w1 wakes them and drives them, holding each for a minute; it is
    // killed while it does.
    let args = ["--lease", "60s", "worker", "--worker-id", "w1", "--poll", "100ms"];
    let spawn_worker = || {
        command(&db, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Process)
            .expect("the worker starts")
    };
    let mut worker = spawn_worker();
    until_runs(&db, Duration::from_secs(20), "w1 did not take the runs", |runs| {
        runs.iter().all(|run| run["status"] == "running" && run["owner"] == "w1")
    });
    worker.kill().expect("SIGKILL the worker");
    worker.wait().expect("the worker is gone");
    let held = listed(&db);
    assert!(held.iter().all(|run| run["status"] == "running" && run["owner"] == "w1"), "{held:?}");
    let leases_end = held.iter().filter_map(|run| run["lease_until"].as_i64()).min().expect("leases");
    assert!(leases_end > now_ms() + 30_000, "the dead worker's leases hold for most of a minute: {held:?}");

    // Restarted as w1, it takes them back and finishes them while those
    // leases still hold: nobody else could have.
    let restarted = spawn_worker();
    until_runs(&db, Duration::from_secs(30), "the restarted w1 did not finish the runs", |runs| {
        runs.iter().all(|run| run["status"] == "completed")
    });
    assert!(now_ms() < leases_end, "finished before the dead worker's leases ended");

    // A second live w1 is refused, naming the id.
    let second = output(&db, &args);
    assert!(!second.status.success(), "a second w1 ran");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("worker id \"w1\" is in use by another live process"), "{said}");

    let status = stop(restarted);
    assert!(status.success(), "the restarted worker did not stop cleanly: {status}");
    for run in listed(&db) {
        let run_id = run["run_id"].as_str().expect("a run id");
        let shown = output(&db, &["--json", "show", run_id]);
        let events: Vec<Value> = String::from_utf8_lossy(&shown.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("an event as JSON"))
            .collect();
        let completed: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "node_completed")
            .filter_map(|e| e["node_id"].as_str())
            .collect();
        assert_eq!(completed, nodes, "every step of run {run_id} once");
        assert_eq!(events.iter().filter(|e| e["type"] == "run_completed").count(), 1, "run {run_id}");
    }
}
