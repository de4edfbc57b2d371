//! The sender against receivers on loopback and a real SQLite store: what
//! each kind of refusal is recorded as, and that a delivery taken is never
//! sent again.

#![allow(clippy::unwrap_used, reason = "a failed setup fails the test")]

use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use roomkit_graph_hooks::{Sender, SenderOptions, new_hook};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::contract::fixtures::{final_step, graph, new_run};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DeliveryFilter, DeliveryStatus, HookDelivery};

/// Serves `app` on a loopback port: its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// The delivery of one completed run to a hook at `url`, after one round of
/// the sender with a 500 ms timeout, to private addresses too.
async fn one_attempt(url: &str) -> HookDelivery {
    attempt_with(url, true).await
}

/// [`one_attempt`], to private addresses only when `private` says so.
async fn attempt_with(url: &str, private: bool) -> HookDelivery {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("runs.db")).unwrap());
    store.save_graph("acme", &graph("g")).await.unwrap();
    store.add_hook(&new_hook("acme", url, &["run.completed"], None).unwrap()).await.unwrap();
    store.create_run(new_run("acme", "g", "r")).await.unwrap();
    store.commit_step(final_step("r", 1)).await.unwrap();
    let options = SenderOptions {
        timeout: Duration::from_millis(500),
        private_addresses: private,
        ..SenderOptions::default()
    };
    let sender = Sender::new(store.clone(), options).unwrap();
    assert_eq!(sender.send_due().await.unwrap(), 1);
    assert_eq!(sender.send_due().await.unwrap(), 0, "not due again before its next attempt");
    let mut deliveries = store.deliveries("acme", &DeliveryFilter::default(), 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    deliveries.remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_recorded_with_why_and_tried_again() {
    let base = serve(
        axum::Router::new()
            .route("/slow", post(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
            .route("/moved", post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }))
            .route("/ok", post(|| async { StatusCode::NO_CONTENT }))
            .route(
                "/chatty",
                post(|| async { (StatusCode::BAD_GATEWAY, "x".repeat(100_000)).into_response() }),
            ),
    )
    .await;

    let slow = one_attempt(&format!("{base}/slow")).await;
    assert_eq!(slow.status, DeliveryStatus::Pending);
    assert!(slow.attempts[0].error.as_deref().unwrap().contains("did not answer in time"), "{slow:?}");
    assert!(slow.next_attempt_at.unwrap() > slow.attempts[0].at, "tried again later");

    let moved = one_attempt(&format!("{base}/moved")).await;
    assert_eq!(
        (moved.status, moved.attempts[0].status_code),
        (DeliveryStatus::Pending, Some(302)),
        "not followed"
    );

    let chatty = one_attempt(&format!("{base}/chatty")).await;
    let error = chatty.attempts[0].error.as_deref().unwrap();
    assert!(error.starts_with("the receiver answered 502 Bad Gateway: xxx") && error.len() < 300, "{error}");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        one_attempt(&format!("http://127.0.0.1:{port}/in")).await
    };
    assert!(closed.attempts[0].error.as_deref().unwrap().starts_with("cannot connect"), "{closed:?}");
    assert_eq!(closed.attempts[0].status_code, None);

    let taken = one_attempt(&format!("{base}/ok")).await;
    assert_eq!(
        (taken.status, taken.next_attempt_at, taken.attempts.len()),
        (DeliveryStatus::Delivered, None, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn private_addresses_are_refused_unless_allowed() {
    let base = serve(axum::Router::new().route("/ok", post(|| async { StatusCode::NO_CONTENT }))).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    for url in [format!("{base}/ok"), format!("http://[::1]:{port}/ok")] {
        let refused = attempt_with(&url, false).await;
        let error = refused.attempts[0].error.as_deref().unwrap();
        assert!(
            error.contains("is a private address") && error.contains("--hooks-to-private-addresses"),
            "{error}"
        );
        assert_eq!((refused.status, refused.attempts[0].status_code), (DeliveryStatus::Pending, None));
    }
    let by_name = attempt_with(&format!("http://localhost:{port}/ok"), false).await;
    let error = by_name.attempts[0].error.as_deref().unwrap();
    assert!(error.contains("localhost resolves to no public address"), "{error}");
    let allowed = attempt_with(&format!("http://localhost:{port}/ok"), true).await;
    assert_eq!(allowed.status, DeliveryStatus::Delivered);
}
