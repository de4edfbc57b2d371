//! `roomkit-graph demo`, the real binary: it prints the console's address and
//! a token, the example runs wait in the inbox (a person's step, both
//! children of a parallel approval), every agent message says it comes from
//! the stand-in, an answer takes a run to its end, its notification prints
//! on the terminal, and SIGTERM stops it.

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test")]

mod server;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::{Server, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_waiting_runs_answered_by_the_stand_in_model() {
    let mut demo = Server::demo();
    let token = demo.token("default");

    // The waiting points, each on its own.
    let deadline = Instant::now() + Duration::from_secs(60);
    let steps = loop {
        let inbox = demo.get(&token, "/v1/inbox").await;
        let steps: Vec<(String, String)> = inbox["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| {
                (step["graph_id"].as_str().unwrap().to_owned(), step["node_id"].as_str().unwrap().to_owned())
            })
            .collect();
        if steps.len() == 3 || Instant::now() > deadline {
            break steps;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pairs = |items: &[(&str, &str)]| {
        items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>()
    };
    assert_eq!(
        steps,
        pairs(&[
            ("release-approval", "legal"),
            ("release-approval", "security"),
            ("content-review", "review")
        ])
    );
    for (graph, node) in
        [("content-review", "review"), ("release-approval", "legal"), ("bug-triage", "escalate")]
    {
        let svg = client()
            .get(demo.url(&format!("/v1/graphs/{graph}/drawing")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(svg.text().await.unwrap().contains(&format!("data-node=\"{node}\"")));
    }

    // Every agent message of the runs says it is the stand-in's.
    let runs: Vec<Value> = demo.get(&token, "/v1/runs").await["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 4);
    let mut messages = 0;
    for run in &runs {
        let id = run["run_id"].as_str().unwrap();
        let run = demo.until_run(&token, id, |run| run["status"] != "running").await;
        assert_ne!(run["status"], "failed", "{run}");
        let transcript = demo.get(&token, &format!("/v1/runs/{id}/transcript")).await;
        for event in
            transcript["events"].as_array().unwrap().iter().filter(|event| event["type"] == "agent_message")
        {
            messages += 1;
            assert!(event["text"].as_str().unwrap().contains("stand-in"), "{event}");
        }
    }
    assert!(messages >= 5, "the draft, the triage, the checks and the summary: {messages}");
    demo.until_logged("the triage's escalation", |line| {
        line.starts_with("[notification on slack] Critical bug: Checkout is down")
    });

    // Approved: the post is published, and the notification prints.
    let review = runs.iter().find(|run| run["graph_id"] == "content-review").unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = json!({"node_id": "review", "data": {"action": "approve"}});
    let answered = demo.post(&token, &format!("/v1/runs/{review}/answer"), &answer).await;
    assert_eq!(answered["run_id"], json!(review), "{answered}");
    demo.until_logged("the publication", |line| {
        line.starts_with("[notification on slack] Published: durable workflows")
    });
    demo.until_run(&token, &review, |run| run["status"] == "completed").await;

    // Another demo cannot take its port: it says so, and makes nothing.
    let taken = demo.base.strip_prefix("http://").unwrap().to_owned();
    let nowhere = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
        .args(["demo", "--listen", &taken, "--dir"])
        .arg(nowhere.path().join("second"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!("cannot listen on {taken}")) && said.contains("--listen 127.0.0.1:0"),
        "{said}"
    );
    assert!(!nowhere.path().join("second").exists());

    // SIGTERM (as Ctrl-C) stops it, and its database stays.
    let db = demo.db.clone();
    assert!(demo.stop().success());
    assert!(db.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_started_again_in_its_folder_goes_on_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("demo");
    let mut first = Server::demo_in(folder.clone(), tempfile::tempdir().unwrap());
    let token = first.token("default");
    let runs = first.get(&token, "/v1/runs?graph_id=content-review").await;
    let review = runs["runs"][0]["run_id"].as_str().unwrap();
    first.until_run(&token, review, |run| run["status"] == "waiting").await;
    assert!(first.stop().success());

    let again = Server::demo_in(folder, tempfile::tempdir().unwrap());
    let token = again.token("default");
    let runs = again.get(&token, "/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 4, "no run started twice");
    assert_eq!(again.get(&token, "/v1/graphs/content-review").await["version"], 1, "no graph stored twice");
    let inbox = again.get(&token, "/v1/inbox").await;
    assert_eq!(inbox["waiting"].as_array().unwrap().len(), 3, "the waiting steps wait on");
    drop(dir);
}
