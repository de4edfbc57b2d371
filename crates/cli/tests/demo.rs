//! `roomkit-graph demo`, the real binary: it prints the console's address and
//! a token, the example runs wait in the inbox (a person's step, both
//! children of a parallel approval), every agent message says it comes from
//! the stand-in, an answer takes a run to its end, its notification prints
//! on the terminal, and Ctrl-C (SIGINT) stops it.

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test")]

mod server;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_waiting_runs_answered_by_the_stand_in_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let kept = Arc::clone(&printed);
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| kept.lock().unwrap().push(line)));
    let until_printed = |what: &str, found: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = printed.lock().unwrap().iter().find(|line| found(line)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the demo never printed {what}: {:?}",
                printed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let open = until_printed("the address", &|line| line.trim_start().starts_with("Open"));
    let url = open.split_whitespace().nth(1).unwrap().trim_end_matches("/#inbox").to_owned();
    let token = until_printed("the token", &|line| line.trim_start().starts_with("Token"));
    let token = token.split_whitespace().nth(1).unwrap().to_owned();
    let get = |path: String| {
        let request = client().get(format!("{url}{path}")).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // The waiting points, each on its own.
    let deadline = Instant::now() + Duration::from_secs(60);
    let steps = loop {
        let inbox = get("/v1/inbox".to_owned()).await;
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
        [("content-review", "review"), ("release-approval", "legal"), ("release-approval", "security")]
    {
        let svg = client()
            .get(format!("{url}/v1/graphs/{graph}/drawing"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(svg.text().await.unwrap().contains(&format!("data-node=\"{node}\"")));
    }

    // Every agent message of the runs says it is the stand-in's.
    let runs = get("/v1/runs".to_owned()).await;
    let runs = runs["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 4);
    let mut messages = 0;
    for run in &runs {
        let transcript = get(format!("/v1/runs/{}/transcript", run["run_id"].as_str().unwrap())).await;
        for event in
            transcript["events"].as_array().unwrap().iter().filter(|event| event["type"] == "agent_message")
        {
            messages += 1;
            assert!(event["text"].as_str().unwrap().contains("stand-in"), "{event}");
        }
    }
    assert!(messages >= 5, "the drafts, triages, checks and summary: {messages}");
    until_printed("the triage's escalation", &|line| {
        line.starts_with("[notification on slack] Critical bug: Checkout is down")
    });

    // Approved: the post is published, and the notification prints.
    let review = runs.iter().find(|run| run["graph_id"] == "content-review").unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = client()
        .post(format!("{url}/v1/runs/{review}/answer"))
        .bearer_auth(&token)
        .json(&json!({"node_id": "review", "data": {"action": "approve"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    until_printed("the publication", &|line| {
        line.starts_with("[notification on slack] Published: durable workflows")
    });

    // Ctrl-C stops it.
    let interrupted = Command::new("kill").args(["-INT", &demo.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            demo.kill().unwrap();
            panic!("the demo did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(dir.path().join("demo.db").exists());
}
