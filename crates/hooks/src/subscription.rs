//! Making a hook: its URL and events checked, an id and a secret of its own.

use roomkit_graph_store::{Hook, HookEvent, now_millis};

/// Why a hook cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The URL is not an absolute http or https URL.
    #[error("the hook's URL {url:?} is not an http:// or https:// URL{detail}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it, when known.
        detail: String,
    },
    /// An event name is not one of the events.
    #[error("{0:?} is not an event: run.completed, run.failed, run.waiting, run.cancelled or node.failed")]
    UnknownEvent(String),
    /// No event was named.
    #[error(
        "a hook hears at least one event: run.completed, run.failed, run.waiting, run.cancelled or node.failed"
    )]
    NoEvents,
}

/// The longest URL a hook takes.
const MAX_URL: usize = 2_048;

/// A hook of `org` sending the events named in `events` (each once, in the
/// order given) to `url`, for the runs of `graph_id` only when one is given:
/// with an id (`hook_` and 16 hex digits) and a signing secret (`whsec_` and
/// 64 hex digits) of its own.
///
/// ```
/// use roomkit_graph_hooks::{HookError, new_hook};
/// use roomkit_graph_store::HookEvent;
///
/// let hook = new_hook("acme", "https://example.com/in", &["run.failed", "node.failed", "run.failed"], None).unwrap();
/// assert_eq!(hook.events, [HookEvent::RunFailed, HookEvent::NodeFailed]);
/// assert!(hook.hook_id.starts_with("hook_") && hook.secret.starts_with("whsec_"));
/// assert!(matches!(new_hook("acme", "ftp://example.com", &["run.failed"], None), Err(HookError::Url { .. })));
/// assert_eq!(new_hook("acme", "http://x", &["run.done"], None), Err(HookError::UnknownEvent("run.done".into())));
/// assert_eq!(new_hook("acme", "http://x", &[], None), Err(HookError::NoEvents));
/// ```
pub fn new_hook(org: &str, url: &str, events: &[&str], graph_id: Option<&str>) -> Result<Hook, HookError> {
    check_url(url)?;
    let mut heard = Vec::new();
    for name in events {
        let event =
            HookEvent::parse(name.trim()).ok_or_else(|| HookError::UnknownEvent((*name).to_owned()))?;
        if !heard.contains(&event) {
            heard.push(event);
        }
    }
    if heard.is_empty() {
        return Err(HookError::NoEvents);
    }
    let id: [u8; 8] = rand::random();
    let secret: [u8; 32] = rand::random();
    Ok(Hook {
        hook_id: format!("hook_{}", hex::encode(id)),
        org: org.to_owned(),
        url: url.to_owned(),
        events: heard,
        graph_id: graph_id.map(str::to_owned),
        secret: format!("whsec_{}", hex::encode(secret)),
        created_at: now_millis(),
    })
}

/// An absolute http or https URL with a host, no longer than [`MAX_URL`].
fn check_url(url: &str) -> Result<(), HookError> {
    let refused =
        |detail: &str| HookError::Url { url: url.chars().take(200).collect(), detail: detail.to_owned() };
    if url.len() > MAX_URL {
        return Err(refused(&format!(": it is longer than {MAX_URL} bytes")));
    }
    let parsed = reqwest::Url::parse(url).map_err(|err| refused(&format!(": {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refused(""));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refused(": it names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refused(": it holds credentials, which would be shown with the hook"));
    }
    Ok(())
}
