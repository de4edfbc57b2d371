//! The email channel against a real SMTP server (mailin-embedded) on
//! loopback, run through the engine.

mod common;

use common::{SmtpServer, engine, notify_graph, run_custom};
use roomkit_graph::EngineStatus;
use roomkit_graph_notify::{Channels, NotificationHandler};
use serde_json::json;

fn mail_channels(server: &SmtpServer, extra: serde_json::Value) -> Channels {
    let mut mail = json!({
        "kind": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "tls": "none",
        "from": "Workflows <robot@example.com>",
        "to": ["oncall@example.com"],
    });
    if let (Some(mail), serde_json::Value::Object(extra)) = (mail.as_object_mut(), extra) {
        mail.extend(extra);
    }
    Channels::from_json_with_env(&json!({"channels": {"mail": mail}}).to_string(), |_| None)
        .expect("valid channels")
}

#[tokio::test]
async fn an_email_arrives_with_its_subject_body_and_message_id() {
    let server = SmtpServer::start(&[]);
    let graph = notify_graph(json!({
        "channel": "mail",
        "template": "The draft {{trigger.title}} was approved.",
        "subject": "Approved: {{trigger.title}}",
    }));
    let mut engine = engine(graph, NotificationHandler::new(mail_channels(&server, json!({}))));

    let (events, ended) = run_custom(&mut engine, json!({"title": "Q3 report"})).await;
    ended.expect("the run completes");
    assert_eq!(engine.status(), EngineStatus::Completed);

    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "robot@example.com");
    assert_eq!(mail.to, ["oncall@example.com"]);
    assert_eq!(mail.header("From").as_deref(), Some("Workflows <robot@example.com>"));
    assert_eq!(mail.header("To").as_deref(), Some("oncall@example.com"));
    assert_eq!(mail.header("Subject").as_deref(), Some("Approved: Q3 report"));
    let run_id = engine.run_id();
    assert_eq!(mail.header("Message-ID"), Some(format!("<{run_id}.notify.1@example.com>")));
    assert!(mail.header("Content-Type").is_some_and(|t| t.starts_with("text/plain")));
    assert_eq!(mail.body(), "The draft Q3 report was approved.");
    assert_eq!(
        events,
        [
            json!({"type": "notification_sent", "channel": "mail", "text": "The draft Q3 report was approved."})
        ]
    );
}

#[tokio::test]
async fn a_rejected_recipient_is_retried_then_fails_the_node() {
    let server = SmtpServer::start(&["nobody@example.com"]);
    let graph = notify_graph(json!({
        "channel": "email",
        "template": "hello",
        "to": "{{trigger.to}}",
        "delivery": {"attempts": 2, "backoff": "10ms"},
    }));
    let mut engine = engine(graph, NotificationHandler::new(mail_channels(&server, json!({}))));

    let (events, ended) = run_custom(&mut engine, json!({"to": "nobody@example.com"})).await;
    let error = ended.expect_err("the recipient is refused").to_string();
    assert!(
        error.contains("notification channel \"mail\" failed after 2 attempts: the SMTP server refused: permanent error (550)"),
        "{error}"
    );
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["type"], "notification_failed");
    assert_eq!(events[1]["attempt"], 2);
    assert!(events[1]["error"].as_str().is_some_and(|e| e.contains("550")), "{events:?}");
    assert!(server.mails().is_empty());
}

#[tokio::test]
async fn a_malformed_recipient_fails_at_once() {
    let server = SmtpServer::start(&[]);
    let graph = notify_graph(json!({"channel": "mail", "template": "hello", "to": "not an address"}));
    let mut engine = engine(graph, NotificationHandler::new(mail_channels(&server, json!({}))));

    let (events, ended) = run_custom(&mut engine, json!({})).await;
    let error = ended.expect_err("no such address").to_string();
    assert!(
        error.contains("failed after 1 attempt: to: \"not an address\" is not an email address"),
        "{error}"
    );
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn starttls_with_a_login_delivers_and_never_shows_the_password() {
    let password = "s3cret-smtp-pass";
    let server = SmtpServer::start_tls("robot", password);
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("relay.pem"), server.certificate.as_deref().expect("a certificate"))
        .expect("write the certificate");
    let file = dir.path().join("channels.json");
    let config = json!({"channels": {"mail": {
        "kind": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "tls": "starttls",
        "ca_file": "relay.pem",
        "username": "robot",
        "password_env": "SMTP_PASSWORD",
        "from": "robot@example.com",
        "to": "oncall@example.com",
    }}});
    std::fs::write(&file, config.to_string()).expect("write the channels file");
    let load = |pass: &'static str| {
        Channels::from_path_with_env(&file, move |var| (var == "SMTP_PASSWORD").then(|| pass.to_owned()))
            .expect("valid channels")
    };
    let channels = load(password);
    assert!(!format!("{channels:?}").contains(password));

    let graph = notify_graph(json!({"channel": "mail", "template": "over TLS"}));
    let (events, ended) =
        run_custom(&mut engine(graph.clone(), NotificationHandler::new(channels)), json!({})).await;
    ended.expect("delivered over STARTTLS");
    assert_eq!(events.len(), 1);
    assert_eq!(server.logins(), [("robot".to_owned(), password.to_owned())]);
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].body(), "over TLS");
    // No subject given: the text's first line.
    assert_eq!(mails[0].header("Subject").as_deref(), Some("over TLS"));

    // A wrong password: refused, and the password is in no error or event.
    let wrong = "wr0ng-smtp-pass";
    let graph_once = notify_graph(json!({"channel": "mail", "template": "x", "delivery": {"attempts": 1}}));
    let (events, ended) =
        run_custom(&mut engine(graph_once, NotificationHandler::new(load(wrong))), json!({})).await;
    let error = ended.expect_err("bad credentials");
    assert!(error.to_string().contains("the SMTP server refused: permanent error (535)"), "{error}");
    for shown in [error.to_string(), format!("{error:?}"), serde_json::to_string(&events).expect("JSON")] {
        assert!(!shown.contains(wrong), "{shown}");
    }
}
