//! The routes the web console stands on, through a real `roomkit-graph serve`
//! over loopback: a graph's versions a page at a time, pictures of graph
//! versions and of graphs not stored yet, and a run's picture marking its
//! path as it goes (a loop back, a person's answer, parallel approvals).

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, approvals_graph, client, review_graph};

/// GETs a picture: its status, and the SVG when 200.
async fn picture(server: &Server, token: &str, path: &str) -> (StatusCode, String) {
    let response = client().get(server.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        let headers = response.headers();
        assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
        assert_eq!(headers["content-security-policy"], "default-src 'none'");
    }
    (status, response.text().await.unwrap())
}

/// The picture's marks: each node's classes by id, and the edges taken.
struct Marks {
    nodes: Vec<(String, BTreeSet<String>)>,
    taken: BTreeSet<usize>,
}

fn marks(svg: &str) -> Marks {
    let document = roxmltree::Document::parse(svg).unwrap_or_else(|error| panic!("{error}: {svg}"));
    let classes = |element: roxmltree::Node<'_, '_>| -> BTreeSet<String> {
        element.attribute("class").unwrap_or_default().split(' ').map(str::to_owned).collect()
    };
    let nodes = document
        .descendants()
        .filter_map(|element| Some((element.attribute("data-node")?.to_owned(), classes(element))))
        .collect();
    let taken = document
        .descendants()
        .filter(|element| element.has_tag_name("g") && classes(*element).contains("taken"))
        .filter_map(|element| element.attribute("data-edge")?.parse().ok())
        .collect();
    Marks { nodes, taken }
}

impl Marks {
    fn with(&self, class: &str) -> BTreeSet<&str> {
        self.nodes.iter().filter(|(_, classes)| classes.contains(class)).map(|(id, _)| id.as_str()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphs_versions_are_listed_a_page_at_a_time_and_each_is_drawn() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let other = server.token("globex");
    server.post(&token, "/v1/graphs", &review_graph("Review")).await;
    for name in ["Review 2", "Review 3"] {
        let response = client()
            .put(server.url("/v1/graphs/review"))
            .bearer_auth(&token)
            .json(&review_graph(name))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let first = server.get(&token, "/v1/graphs/review/versions?limit=2").await;
    assert_eq!(first["graph_id"], "review");
    let names: Vec<(u64, &str)> = first["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| (version["version"].as_u64().unwrap(), version["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [(3, "Review 3"), (2, "Review 2")]);
    assert_eq!((&first["versions"][0]["nodes"], &first["versions"][0]["edges"]), (&json!(5), &json!(5)));
    assert_eq!(first["next_before"], 2);
    let last = server.get(&token, "/v1/graphs/review/versions?limit=2&before=2").await;
    assert_eq!((last["versions"][0]["version"].as_u64(), &last["next_before"]), (Some(1), &Value::Null));
    assert_eq!(last["versions"].as_array().unwrap().len(), 1);
    for (who, path) in [(&token, "/v1/graphs/nope/versions"), (&other, "/v1/graphs/review/versions")] {
        let response = client().get(server.url(path)).bearer_auth(who).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let (status, svg) = picture(&server, &token, "/v1/graphs/review/drawing?version=1").await;
    assert_eq!(status, StatusCode::OK);
    let drawn = marks(&svg);
    let ids: Vec<&str> = drawn.nodes.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    assert!(svg.contains("<title>Review</title>") && svg.contains("action = approve"));
    let (_, latest) = picture(&server, &token, "/v1/graphs/review/drawing").await;
    assert!(latest.contains("<title>Review 3</title>"));
    assert_eq!(picture(&server, &other, "/v1/graphs/review/drawing").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        picture(&server, &token, "/v1/graphs/review/drawing?version=9").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_not_stored_is_drawn_mistakes_and_all_unless_too_large() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let draw = |body: Value| client().post(server.url("/v1/drawing")).bearer_auth(&token).json(&body).send();
    // An edge to a node that does not exist: a mistake, drawn without it.
    let mut broken = review_graph("Broken");
    broken["edges"].as_array_mut().unwrap().push(json!({"source": "publish", "target": "nowhere"}));
    let response = draw(broken).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let svg = response.text().await.unwrap();
    assert_eq!(marks(&svg).nodes.len(), 5);
    assert!(!svg.contains("nowhere"));

    let response = draw(json!([1, 2])).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let nodes: Vec<Value> = (0..5001).map(|i| json!({"id": format!("n{i}"), "type": "log"})).collect();
    let huge =
        json!({"id": "huge", "name": "Huge", "trigger": {"type": "manual"}, "nodes": nodes, "edges": []});
    let response = draw(huge).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large_to_draw");
    assert!(body["error"]["message"].as_str().unwrap().contains("5001 nodes"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_picture_marks_where_it_went_and_where_it_waits() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let other = server.token("globex");
    server.post(&token, "/v1/graphs", &review_graph("Review")).await;
    let run = server.post(&token, "/v1/graphs/review/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/runs/{run_id}/drawing");
    server.until_run(&token, &run_id, |run| run["status"] == "waiting").await;

    let (status, svg) = picture(&server, &token, &path).await;
    assert_eq!(status, StatusCode::OK);
    let at_review = marks(&svg);
    assert_eq!(at_review.with("current"), ["review"].into());
    assert_eq!(at_review.with("done"), ["draft", "start"].into());
    assert_eq!(at_review.taken, [0, 1].into());
    assert!(svg.contains("●") && svg.contains("✓"), "marks are signs too, not colours alone");
    assert_eq!(picture(&server, &other, &path).await.0, StatusCode::NOT_FOUND);

    // Rejected: back to the draft and to review again, along the loop.
    let answer = |action: &str| json!({"node_id": "review", "data": {"action": action}});
    server.post(&token, &format!("/v1/runs/{run_id}/answer"), &answer("reject")).await;
    server
        .until_run(&token, &run_id, |run| run["status"] == "waiting" && run["steps"].as_u64() > Some(3))
        .await;
    let looped = marks(&picture(&server, &token, &path).await.1);
    assert_eq!(looped.taken, [0, 1, 3].into());
    assert_eq!(looped.with("current"), ["review"].into());

    // A fork at the second wait carries the path that led there.
    let transcript = server.get(&token, &format!("/v1/runs/{run_id}/transcript")).await;
    let wait = transcript["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|event| event["type"] == "node_waiting")
        .unwrap();
    let fork = server.post(&token, &format!("/v1/runs/{run_id}/fork"), &json!({"at": wait["seq"]})).await;
    let fork_id = fork["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &fork_id, |run| run["status"] == "waiting").await;
    let forked = marks(&picture(&server, &token, &format!("/v1/runs/{fork_id}/drawing")).await.1);
    assert_eq!((&forked.taken, forked.with("current")), (&[0, 1, 3].into(), ["review"].into()));
    assert_eq!(forked.with("done"), ["draft", "review", "start"].into());

    server.post(&token, &format!("/v1/runs/{run_id}/answer"), &answer("approve")).await;
    server.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    let done = marks(&picture(&server, &token, &path).await.1);
    assert!(done.with("current").is_empty());
    assert_eq!(done.with("done").len(), 5);
    assert_eq!(done.taken, [0, 1, 2, 3, 4].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_approvals_are_both_marked_inside_their_parallel_node() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    server.post(&token, "/v1/graphs", &approvals_graph("release", "all")).await;
    let run = server.post(&token, "/v1/graphs/release/runs", &json!({"release": "1.0"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &run_id, |run| run["pending"].as_array().is_some_and(|p| p.len() == 2)).await;
    let svg = picture(&server, &token, &format!("/v1/runs/{run_id}/drawing")).await.1;
    let waiting = marks(&svg);
    assert_eq!(waiting.with("current"), ["legal", "security"].into());
    assert!(waiting.with("compound").contains("approvals"));

    let answer = |node: &str| json!({"node_id": node, "data": {"action": "approve"}});
    server.post(&token, &format!("/v1/runs/{run_id}/answer"), &answer("legal")).await;
    let one = marks(&picture(&server, &token, &format!("/v1/runs/{run_id}/drawing")).await.1);
    let finished: BTreeSet<&str> = ["legal", "lint", "start"].into();
    assert_eq!((one.with("current"), one.with("done")), (["security"].into(), finished));
    server.post(&token, &format!("/v1/runs/{run_id}/answer"), &answer("security")).await;
    server.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    let done = marks(&picture(&server, &token, &format!("/v1/runs/{run_id}/drawing")).await.1);
    let all: BTreeSet<&str> = ["start", "approvals", "legal", "security", "lint", "end"].into();
    assert_eq!(done.with("done"), all);
    assert_eq!(done.taken, [0, 1].into());
}

/// Reads the whole inbox, `limit` runs a page: each step as (run, node, prompt).
async fn whole_inbox(server: &Server, token: &str, limit: usize) -> Vec<Value> {
    let mut steps = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/inbox?limit={limit}&cursor={cursor}"),
            None => format!("/v1/inbox?limit={limit}"),
        };
        let page = server.get(token, &path).await;
        steps.extend(page["waiting"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return steps,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_holds_every_waiting_step_once_and_each_is_answered_in_place() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let other = server.token("globex");
    server.post(&token, "/v1/graphs", &review_graph("Review")).await;
    server.post(&other, "/v1/graphs", &review_graph("Review")).await;
    server.post(&token, "/v1/graphs", &approvals_graph("release", "all")).await;
    let outer = json!({"id": "outer", "name": "Outer", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"}, {"id": "check", "type": "subgraph", "config": {"graph_id": "review"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "check"}, {"source": "check", "target": "end"}]});
    server.post(&token, "/v1/graphs", &outer).await;

    let start = |graph: &'static str, who: &str| {
        let (server, who) = (&server, who.to_owned());
        async move {
            server.post(&who, &format!("/v1/graphs/{graph}/runs"), &json!({"release": "2.0"})).await["run_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let reviews =
        [start("review", &token).await, start("review", &token).await, start("review", &token).await];
    let release = start("release", &token).await;
    let parent = start("outer", &token).await;
    start("review", &other).await;
    for run in reviews.iter().chain([&release]) {
        server
            .until_run(&token, run, |run| run["status"] == "waiting" && run["current_node_id"] != "start")
            .await;
    }
    server.until_run(&token, &release, |run| run["pending"].as_array().is_some_and(|p| p.len() == 2)).await;
    let child =
        server.until_run(&token, &parent, |run| run["children"][0]["waiting_on"][0] == "review").await;
    let child = child["children"][0]["run_id"].as_str().unwrap().to_owned();

    let steps = whole_inbox(&server, &token, 2).await;
    let mut seen: Vec<(String, String)> = steps
        .iter()
        .map(|step| {
            (step["run_id"].as_str().unwrap().to_owned(), step["node_id"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut expected: Vec<(String, String)> =
        reviews.iter().chain([&child]).map(|run| (run.clone(), "review".to_owned())).collect();
    expected.extend(["legal", "security"].map(|node| (release.clone(), node.to_owned())));
    seen.sort();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every waiting point once, the parent run none of its own, no other organization's"
    );
    let legal = steps.iter().find(|step| step["node_id"] == "legal").unwrap();
    assert_eq!(legal["prompt"], "Legal: ship 2.0?");
    assert_eq!(legal["actions"], json!(["approve", "reject"]));
    assert!(legal["waiting_since"].as_i64().unwrap() >= legal["created_at"].as_i64().unwrap());
    let from_child = steps.iter().find(|step| step["run_id"] == child.as_str()).unwrap();
    assert_eq!(
        (&from_child["parent"]["run_id"], &from_child["parent"]["node_id"]),
        (&json!(parent), &json!("check"))
    );
    // Newest run first.
    assert_eq!(steps[0]["run_id"], json!(child));

    // Answered in place: the step leaves the inbox, the parent goes on.
    let answer = json!({"node_id": "review", "data": {"action": "approve"}});
    server.post(&token, &format!("/v1/runs/{child}/answer"), &answer).await;
    server.until_run(&token, &parent, |run| run["status"] == "completed").await;
    let security = json!({"node_id": "security", "data": {"action": "approve"}});
    server.post(&token, &format!("/v1/runs/{release}/answer"), &security).await;
    let left: Vec<(String, String)> = whole_inbox(&server, &token, 100)
        .await
        .iter()
        .map(|step| {
            (step["run_id"].as_str().unwrap().to_owned(), step["node_id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(
        left.contains(&(release.clone(), "legal".to_owned())) && !left.iter().any(|(run, _)| *run == child)
    );
    let theirs = whole_inbox(&server, &other, 100).await;
    assert_eq!(theirs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_searched_by_id_prefix_and_trigger_field() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    server.post(&token, "/v1/graphs", &approvals_graph("release", "all")).await;
    let mut started = Vec::new();
    for trigger in [
        json!({"customer": "acme", "count": 3}),
        json!({"customer": "globex", "count": 3.0}),
        json!({"customer": "acme"}),
    ] {
        started.push(
            server.post(&token, "/v1/graphs/release/runs", &trigger).await["run_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let ids = |page: Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let acme = ids(server.get(&token, "/v1/runs?trigger_field=customer&trigger_value=acme").await);
    assert_eq!(acme, [started[2].clone(), started[0].clone()]);
    let three = ids(server.get(&token, "/v1/runs?trigger_field=count&trigger_value=3").await);
    assert_eq!(three, [started[1].clone(), started[0].clone()]);
    assert!(ids(server.get(&token, "/v1/runs?trigger_field=count&trigger_value=%223%22").await).is_empty());
    let prefix = &started[1][..started[1].len() - 3];
    let found = ids(server.get(&token, &format!("/v1/runs?run_id_prefix={prefix}")).await);
    assert!(found.contains(&started[1]) && found.iter().all(|id| id.starts_with(prefix)));
    assert_eq!(
        ids(server.get(&token, &format!("/v1/runs?run_id_prefix={}", started[1])).await),
        [started[1].clone()]
    );
    for bad in [
        "/v1/runs?trigger_field=customer",
        "/v1/runs?trigger_field=a..b&trigger_value=1",
        "/v1/runs?trigger_field=a%20b&trigger_value=1",
    ] {
        let response = client().get(server.url(bad)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_query", "{bad}");
    }
}
