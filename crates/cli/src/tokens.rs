//! `token create`, `token list` and `token revoke`: access tokens for the
//! HTTP API, each of one organization.

use std::io::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use roomkit_graph_runner::Runner;
use roomkit_graph_server::new_token;
use roomkit_graph_store::{Millis, TokenRecord, now_millis};
use serde_json::json;

/// What a token made by `token create` may do, and for how long.
pub(crate) struct Made<'a> {
    /// A name for people.
    pub(crate) label: Option<&'a str>,
    /// How long it is taken, from now (forever without).
    pub(crate) expires_in: Option<Duration>,
    /// Whether it may only read and follow.
    pub(crate) read_only: bool,
}

/// `token create`: makes a token of `org`, stores its hash, prints it once
/// (with --json, `{"token", "id", "org", "label", "expires_at", "read_only"}`).
pub(crate) async fn create(runner: &Runner, org: &str, made: Made<'_>, json: bool) -> anyhow::Result<()> {
    if org.trim().is_empty() {
        anyhow::bail!("--org must name an organization");
    }
    let mut new = new_token(org, made.label);
    if let Some(expires_in) = made.expires_in {
        let millis = Millis::try_from(expires_in.as_millis()).ok().filter(|millis| *millis > 0);
        let expires_at = millis.and_then(|millis| new.record.created_at.checked_add(millis));
        new.record.expires_at = Some(
            expires_at.context("--expires must be longer than 0s and within the next 290 million years")?,
        );
    }
    new.record.read_only = made.read_only;
    runner.store().create_token(&new.record).await?;
    let record = &new.record;
    if json {
        println!(
            "{}",
            json!({"token": new.token, "id": record.id, "org": org, "label": record.label,
                "expires_at": record.expires_at, "read_only": record.read_only})
        );
    } else {
        println!("{}", new.token);
        let expiry =
            record.expires_at.map_or("never expires".to_owned(), |at| format!("expires {}", when(at)));
        let kind = if record.read_only { "read-only " } else { "" };
        eprintln!(
            "{kind}token {} for organization {org:?}, {expiry}: shown once, only its hash is stored",
            record.id
        );
    }
    Ok(())
}

/// `token list`: the tokens of `org`, oldest first, never their secret: `ID
/// LABEL created … last used … expires …` (with --json, a line each with the
/// times in milliseconds).
pub(crate) async fn list(runner: &Runner, org: &str, json: bool) -> anyhow::Result<()> {
    let tokens = runner.store().tokens(org).await?;
    let mut out = std::io::stdout().lock();
    let now = now_millis();
    for token in &tokens {
        if json {
            writeln!(out, "{}", summary(token))?;
        } else {
            writeln!(out, "{}", line(token, now))?;
        }
    }
    if tokens.is_empty() && !json {
        eprintln!("organization {org:?} has no tokens");
    }
    Ok(())
}

/// `token revoke ID`: removes a token of `org`; every server refuses it from
/// its next request.
pub(crate) async fn revoke(runner: &Runner, org: &str, id: &str) -> anyhow::Result<()> {
    if !runner.store().revoke_token(org, id).await? {
        anyhow::bail!("organization {org:?} has no token {id:?} (`token list` shows its tokens)");
    }
    eprintln!("token {id} revoked");
    Ok(())
}

/// A token for scripts: everything but its hash.
fn summary(token: &TokenRecord) -> serde_json::Value {
    json!({
        "id": token.id,
        "label": token.label,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "read_only": token.read_only,
    })
}

/// A token for people, on one line.
fn line(token: &TokenRecord, now: Millis) -> String {
    let label = token.label.as_deref().map_or(String::new(), |label| format!("  {label:?}"));
    let used = token.last_used_at.map_or("never used".to_owned(), |at| format!("last used {}", when(at)));
    let expiry = match token.expires_at {
        None => "never expires".to_owned(),
        Some(at) if token.expired_at(now) => format!("EXPIRED {}", when(at)),
        Some(at) => format!("expires {}", when(at)),
    };
    let kind = if token.read_only { "  read-only" } else { "" };
    format!("{}{label}{kind}  created {}  {used}  {expiry}", token.id, when(token.created_at))
}

/// A time in milliseconds, in UTC to the second.
fn when(at: Millis) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or_default());
    humantime::format_rfc3339_seconds(at).to_string()
}
