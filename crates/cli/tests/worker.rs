//! `roomkit-graph worker`: a run whose process died while it waited on a timer
//! is finished by a worker, which then stops cleanly on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PAUSE: &str = r#"{"id": "pause", "name": "Pause", "trigger": {"type": "manual"},
 "nodes": [{"id": "start", "type": "start"},
           {"id": "wait", "type": "function", "config": {"action": "delay", "duration": "1s"}},
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

fn stop(mut child: Child) -> std::process::ExitStatus {
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

    // The process that started the run dies while the run waits on its timer.
    let mut starter = command(&db, &["run", graph.to_str().expect("UTF-8 path")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    let waiting = until_listed(&db, "waiting");
    starter.kill().expect("SIGKILL the starter");
    starter.wait().expect("the starter is gone");

    let worker = command(&db, &["worker", "--poll", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker starts");
    let completed = until_listed(&db, "completed");
    assert_eq!(completed.split_whitespace().next(), waiting.split_whitespace().next());

    let status = stop(worker);
    assert!(status.success(), "the worker did not stop cleanly: {status}");
}
