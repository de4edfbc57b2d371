//! Webhook and Slack channels against a real HTTP server on loopback, run
//! through the engine.

mod common;

use std::time::Duration;

use common::{Answers, HttpServer, engine, notify_graph, run_custom};
use roomkit_graph::{EngineStatus, ErrorKind};
use roomkit_graph_notify::{Channels, NotificationHandler, SlackChannel, WebhookChannel};
use serde_json::json;

fn channels(json: String, env: &[(&str, String)]) -> Channels {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    Channels::from_json_with_env(&json, |var| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
        .expect("valid channels")
}

#[tokio::test]
async fn a_webhook_receives_the_rendered_text_with_the_idempotency_key() {
    let server = HttpServer::start(Answers::ok("")).await;
    let channels = channels(
        json!({"channels": {"hooks": {
            "kind": "webhook",
            "url": server.url("/hooks/roomkit"),
            "headers": {"Authorization": {"env": "HOOK_TOKEN"}, "X-Team": "ops"}
        }}})
        .to_string(),
        &[("HOOK_TOKEN", "Bearer t0ken-value".to_owned())],
    );
    let graph = notify_graph(json!({
        "channel": "hooks",
        "template": "Published: {{trigger.title}}",
        "subject": "News",
        "to": "{{trigger.editor}}",
    }));
    let mut engine = engine(graph, NotificationHandler::new(channels));

    let (events, ended) =
        run_custom(&mut engine, json!({"title": "Q3 report", "editor": "ed@example.com"})).await;
    ended.expect("the run completes");
    assert_eq!(engine.status(), EngineStatus::Completed);

    let key = format!("{}/notify/1", engine.run_id());
    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/hooks/roomkit");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(key.as_str()));
    assert_eq!(request.header("authorization"), Some("Bearer t0ken-value"));
    assert_eq!(request.header("x-team"), Some("ops"));
    assert_eq!(
        request.json(),
        json!({
            "run_id": engine.run_id(),
            "node_id": "notify",
            "channel": "hooks",
            "text": "Published: Q3 report",
            "subject": "News",
            "to": ["ed@example.com"],
            "idempotency_key": key,
            "attempt": 1,
        })
    );
    assert_eq!(
        events,
        [json!({"type": "notification_sent", "channel": "hooks", "text": "Published: Q3 report"})]
    );
    assert_eq!(
        engine.context().get("notify.output"),
        Some(&json!({"sent": true, "channel": "hooks", "text": "Published: Q3 report", "attempts": 1}))
    );
}

#[tokio::test]
async fn failed_posts_are_retried_until_the_server_recovers() {
    let server = HttpServer::start(Answers::failing_first(2, "")).await;
    let channels =
        Channels::new().with("hooks", WebhookChannel::new(server.url("/h").parse().expect("a URL")));
    let graph = notify_graph(json!({
        "channel": "webhook",
        "template": "Deploy {{trigger.version}} done",
        "delivery": {"attempts": 3, "backoff": "10ms"},
    }));
    let mut engine = engine(graph, NotificationHandler::new(channels));

    let (events, ended) = run_custom(&mut engine, json!({"version": "1.4.2"})).await;
    ended.expect("the third attempt succeeds");

    let error = "the server answered 500: try again later";
    assert_eq!(
        events,
        [
            json!({"type": "notification_failed", "channel": "hooks", "attempt": 1, "error": error}),
            json!({"type": "notification_failed", "channel": "hooks", "attempt": 2, "error": error}),
            json!({"type": "notification_sent", "channel": "hooks", "text": "Deploy 1.4.2 done"}),
        ]
    );
    // Every retry within the node carries the same key, so the receiver can
    // tell them apart from new notifications.
    let keys: Vec<_> =
        server.received().iter().map(|r| r.header("idempotency-key").map(str::to_owned)).collect();
    let key = Some(format!("{}/notify/1", engine.run_id()));
    assert_eq!(keys, [key.clone(), key.clone(), key]);
    assert_eq!(engine.context().get("notify.output.attempts"), Some(&json!(3)));
}

#[tokio::test]
async fn a_webhook_that_always_fails_fails_the_node_naming_the_channel() {
    let server = HttpServer::start(Answers::always(503, "maintenance")).await;
    let channels =
        Channels::new().with("hooks", WebhookChannel::new(server.url("/h").parse().expect("a URL")));
    let graph = notify_graph(json!({"channel": "hooks", "template": "hello", "delivery": {"attempts": 2}}));
    let mut engine = engine(graph, NotificationHandler::new(channels));

    let (events, ended) = run_custom(&mut engine, json!({})).await;
    let error = ended.expect_err("the node fails");
    assert_eq!(error.kind(), ErrorKind::Execution);
    assert_eq!(error.node(), Some("notify"));
    assert!(
        error.to_string().contains(
            "notification channel \"hooks\" failed after 2 attempts: the server answered 503: maintenance"
        ),
        "{error}"
    );
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|event| event["type"] == "notification_failed"));
    assert_eq!(server.received().len(), 2);
    assert_eq!(engine.context().get("notify.output"), None);
}

#[tokio::test]
async fn a_refused_connection_and_a_slow_server_are_failures_too() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.local_addr().expect("local address")
    };
    let slow = HttpServer::start(Answers { delay: Duration::from_secs(5), ..Answers::ok("") }).await;
    let channels = Channels::new()
        .with("gone", WebhookChannel::new(format!("http://{refused}/h").parse().expect("a URL")))
        .with("slow", WebhookChannel::new(slow.url("/h").parse().expect("a URL")));
    let handler = NotificationHandler::new(channels);

    let graph = notify_graph(json!({"channel": "gone", "template": "x", "delivery": {"attempts": 1}}));
    let (_, ended) = run_custom(&mut engine(graph, handler.clone()), json!({})).await;
    let error = ended.expect_err("nothing listens").to_string();
    assert!(error.contains("channel \"gone\" failed after 1 attempt: cannot reach the server"), "{error}");

    let graph = notify_graph(json!({
        "channel": "slow", "template": "x", "delivery": {"attempts": 2, "timeout": "200ms"}
    }));
    let (events, ended) = run_custom(&mut engine(graph, handler), json!({})).await;
    let error = ended.expect_err("too slow").to_string();
    assert!(error.contains("channel \"slow\" failed after 2 attempts: no answer within 200ms"), "{error}");
    assert_eq!(events[0]["error"], "no answer within 200ms");
}

#[tokio::test]
async fn slack_gets_the_text_and_ok_means_delivered() {
    let server = HttpServer::start(Answers::ok("ok")).await;
    let webhook_url = server.url("/services/T000/B000/XXXXSECRET");
    let channels = channels(
        json!({"channels": {"ops-slack": {"kind": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"}}})
            .to_string(),
        &[("SLACK_WEBHOOK_URL", webhook_url)],
    );
    // The seed's node: the channel is named by its kind.
    let graph = notify_graph(json!({"channel": "slack", "template": "Published: {{trigger.title}}"}));
    let mut engine = engine(graph, NotificationHandler::new(channels));

    let (events, ended) = run_custom(&mut engine, json!({"title": "Launch"})).await;
    ended.expect("the run completes");

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/services/T000/B000/XXXXSECRET");
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    assert_eq!(received[0].json(), json!({"text": "Published: Launch"}));
    assert_eq!(
        events,
        [json!({"type": "notification_sent", "channel": "ops-slack", "text": "Published: Launch"})]
    );
}

#[tokio::test]
async fn slack_rejections_fail_clearly_without_showing_the_webhook_url() {
    let server = HttpServer::start(Answers::always(200, "invalid_payload")).await;
    let secret_path = "/services/T000/B000/XXXXSECRET";
    let slack = SlackChannel::new(server.url(secret_path).parse().expect("a URL"));
    let channels = Channels::new().with("ops-slack", slack);
    assert!(!format!("{channels:?}").contains("XXXXSECRET"), "{channels:?}");
    let graph = notify_graph(json!({"channel": "ops-slack", "template": "hi", "delivery": {"attempts": 2}}));
    let mut engine = engine(graph, NotificationHandler::new(channels));

    let (events, ended) = run_custom(&mut engine, json!({})).await;
    let error = ended.expect_err("Slack said no");
    let text = error.to_string();
    assert!(
        text.contains("channel \"ops-slack\" failed after 2 attempts: Slack answered \"invalid_payload\""),
        "{text}"
    );
    for shown in [text, format!("{error:?}"), serde_json::to_string(&events).expect("JSON")] {
        assert!(!shown.contains("XXXXSECRET"), "{shown}");
    }
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn a_node_naming_no_configured_channel_fails_before_sending() {
    let server = HttpServer::start(Answers::ok("")).await;
    let channels =
        Channels::new().with("hooks", WebhookChannel::new(server.url("/h").parse().expect("a URL")));
    let graph = notify_graph(json!({"channel": "pager", "template": "x"}));
    let (events, ended) = run_custom(&mut engine(graph, NotificationHandler::new(channels)), json!({})).await;
    let error = ended.expect_err("no such channel");
    assert_eq!(
        error.to_string(),
        "node \"notify\" failed: channel \"pager\" is not configured (configured: hooks)"
    );
    assert!(events.is_empty());
    assert!(server.received().is_empty());
}
