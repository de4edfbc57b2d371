//! Loading channels files: what loads, and how each mistake is reported.

use roomkit_graph::{Edge, Graph, GraphCheck, Node, Trigger};
use roomkit_graph_notify::{Channels, ChannelsError, ConfigError, NotificationHandler};
use serde_json::{Value, json};

fn env(var: &str) -> Option<String> {
    match var {
        "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T0/B0/SLACKSECRET".to_owned()),
        "HOOK_TOKEN" => Some("Bearer HEADERSECRET".to_owned()),
        "SMTP_PASSWORD" => Some("SMTPSECRET".to_owned()),
        _ => None,
    }
}

fn load(document: Value) -> Result<Channels, ChannelsError> {
    Channels::from_json_with_env(&document.to_string(), env)
}

/// The error `channel` gives, as text.
fn error_of(channel: Value) -> String {
    match load(json!({"channels": {"c": channel}})) {
        Ok(channels) => panic!("loaded {channels:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_full_file_loads_and_hides_its_secrets() {
    let channels = load(json!({"channels": {
        "ops-slack": {"kind": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"},
        "hooks": {"kind": "webhook", "url": "https://hooks.example.com/x?token=URLSECRET",
                  "headers": {"Authorization": {"env": "HOOK_TOKEN"}}},
        "mail": {"kind": "email", "smtp_host": "smtp.example.com", "smtp_port": 2525, "tls": "tls",
                 "username": "robot", "password_env": "SMTP_PASSWORD",
                 "from": "Workflows <robot@example.com>", "to": ["a@example.com", "b@example.com"]}
    }}))
    .expect("valid channels");
    assert_eq!(channels.names().collect::<Vec<_>>(), ["hooks", "mail", "ops-slack"]);
    let kinds: Vec<&str> = channels.names().filter_map(|name| channels.get(name)).map(|c| c.kind()).collect();
    assert_eq!(kinds, ["webhook", "email", "slack"]);
    let shown = format!("{channels:?}");
    for secret in ["SLACKSECRET", "HEADERSECRET", "SMTPSECRET", "URLSECRET"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("smtp.example.com") && shown.contains("2525"), "{shown}");
}

#[test]
fn each_mistake_names_its_channel_and_field() {
    let cases = [
        (
            json!({"kind": "pager"}),
            "channel \"c\": kind: \"pager\" is not a channel kind (webhook, slack or email)",
        ),
        (
            json!({"url": "https://x"}),
            "channel \"c\": kind: null is not a channel kind (webhook, slack or email)",
        ),
        (json!({"kind": "slack"}), "channel \"c\": webhook_url|webhook_url_env: required for kind slack"),
        (
            json!({"kind": "slack", "webhook_url_env": "UNSET_VAR"}),
            "channel \"c\": webhook_url_env: the environment variable UNSET_VAR is not set",
        ),
        (
            json!({"kind": "slack", "webhook_url": "https://a", "webhook_url_env": "SLACK_WEBHOOK_URL"}),
            "channel \"c\": webhook_url and webhook_url_env: give one or the other",
        ),
        (
            json!({"kind": "slack", "webhook_ur": "https://hooks.slack.com/x"}),
            "channel \"c\": webhook_ur: not a field of kind slack",
        ),
        (
            json!({"kind": "webhook", "url": "https://x.example", "header": {}}),
            "channel \"c\": header: not a field of kind webhook",
        ),
        (
            json!({"kind": "webhook", "url": "ftp://x.example/f"}),
            "channel \"c\": url: must be an http or https URL, not ftp:",
        ),
        (
            json!({"kind": "webhook", "url": "https://x.example", "headers": {"X-Key": 5}}),
            "channel \"c\": headers.X-Key: must be a string or {\"env\": VARIABLE}",
        ),
        (
            json!({"kind": "email", "smtp_host": "h", "from": "robot@example.com", "smtp_port": 70000}),
            "channel \"c\": smtp_port: 70000 is not a port number (1 to 65535)",
        ),
        (
            json!({"kind": "email", "smtp_host": "h", "from": "robot@example.com", "tls": "ssl"}),
            "channel \"c\": tls: \"ssl\" is not starttls, tls or none",
        ),
        (json!({"kind": "email", "smtp_host": "h"}), "channel \"c\": from: required for kind email"),
        (
            json!({"kind": "email", "smtp_host": "h", "from": "robot@example.com", "username": "u"}),
            "channel \"c\": password|password_env: required for kind email",
        ),
        (
            json!({"kind": "email", "smtp_host": "h", "from": "robot@example.com", "to": ["ok@example.com", 3]}),
            "channel \"c\": to: 3 is not an email address",
        ),
    ];
    for (channel, expected) in cases {
        assert_eq!(error_of(channel.clone()), expected, "for {channel}");
    }
    let bad_from = error_of(json!({"kind": "email", "smtp_host": "h", "from": "robot at example"}));
    assert!(
        bad_from.starts_with("channel \"c\": from: \"robot at example\" is not an email address"),
        "{bad_from}"
    );
}

#[test]
fn a_bad_url_from_the_environment_is_reported_without_quoting_it() {
    let error = Channels::from_json_with_env(
        r#"{"channels": {"ops": {"kind": "slack", "webhook_url_env": "SLACK"}}}"#,
        |_| Some("not a url SLACKSECRET".to_owned()),
    )
    .map(|_| ())
    .expect_err("not a URL");
    let text = error.to_string();
    assert!(text.starts_with("channel \"ops\": webhook_url_env: not a valid URL"), "{text}");
    assert!(!text.contains("SLACKSECRET") && !format!("{error:?}").contains("SLACKSECRET"), "{text}");
}

#[test]
fn the_document_itself_must_be_channels_by_name() {
    let shape = |text: &str| {
        Channels::from_json_with_env(text, env).map(|_| ()).expect_err("wrong shape").to_string()
    };
    assert_eq!(shape("[]"), "a channels file is a JSON object: {\"channels\": {NAME: {\"kind\": ...}}}");
    assert_eq!(shape("{}"), "channels: missing (the object of channels by name)");
    assert_eq!(
        shape(r#"{"channels": {}, "chanels": {}}"#),
        "chanels: unknown top-level field (only channels)"
    );
    assert!(shape("{\"channels\": ").starts_with("not valid JSON: EOF while parsing"));
}

#[test]
fn file_errors_name_the_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.json");
    let error = Channels::from_path(&missing).map(|_| ()).expect_err("no such file");
    assert!(matches!(error, ChannelsError::Read { .. }));
    assert!(error.to_string().starts_with(&format!("cannot read the channels file {}", missing.display())));

    let file = dir.path().join("channels.json");
    std::fs::write(
        &file,
        r#"{"channels": {"mail": {"kind": "email", "smtp_host": "h", "from": "a@b.c", "ca_file": "none.pem"}}}"#,
    )?;
    let error = Channels::from_path(&file).map(|_| ()).expect_err("no CA file");
    let text = error.to_string();
    let expected = format!(
        "{}: channel \"mail\": ca_file: cannot read {}",
        file.display(),
        dir.path().join("none.pem").display()
    );
    assert!(text.starts_with(&expected), "{text}");

    std::fs::write(dir.path().join("none.pem"), "not a certificate")?;
    let text = Channels::from_path(&file).map(|_| ()).expect_err("not PEM").to_string();
    assert!(text.ends_with("none.pem holds no PEM certificate"), "{text}");
    Ok(())
}

#[test]
fn a_graph_check_lists_every_notification_mistake() -> Result<(), Box<dyn std::error::Error>> {
    let channels = load(json!({"channels": {
        "ops-slack": {"kind": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"},
        "team-slack": {"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T1/B1/Y"},
        "mail": {"kind": "email", "smtp_host": "smtp.example.com", "from": "robot@example.com"}
    }}))?;
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph.add_nodes([
        Node::new("start", "start"),
        Node::new("fine", "notification").with_config(json!({"channel": "email", "template": "x"})),
        Node::new("unknown", "notification").with_config(json!({"channel": "pager", "template": "x"})),
        Node::new("ambiguous", "notification").with_config(json!({"channel": "slack", "template": "x"})),
        Node::new("bare", "notification"),
        Node::new("slow", "notification")
            .with_config(json!({"channel": "mail", "template": "x", "delivery": {"backoff": "soon"}})),
        Node::new("end", "end"),
    ])?;
    graph.add_edge(Edge::new("start", "end"));

    let issues = NotificationHandler::new(channels).graph_check().check(&graph);
    let found: Vec<(&str, &str)> = issues
        .iter()
        .map(|issue| (issue.node.as_deref().unwrap_or_default(), issue.field.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        found,
        [
            ("unknown", "channel"),
            ("ambiguous", "channel"),
            ("bare", "channel"),
            ("bare", "template"),
            ("slow", "delivery.backoff"),
        ]
    );
    let unknown = ConfigError::UnknownChannel {
        channel: "pager".into(),
        known: vec!["mail".into(), "ops-slack".into(), "team-slack".into()],
    };
    assert_eq!(issues[0].message, unknown.to_string());
    assert!(issues.iter().all(|issue| issue.code.as_str() == "notification_config"));
    assert_eq!(
        issues[1].message,
        "channel \"slack\" is ambiguous: it is the kind of ops-slack, team-slack; name one of them"
    );
    Ok(())
}
