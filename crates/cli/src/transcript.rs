//! A run's transcript as plain text, one line per event, like a chat thread:
//! how the command line prints a run's transcript (`runs show`, without `--json`).

use std::fmt::Write as _;

use roomkit_graph_store::{Entry, Millis, TranscriptEvent};
use serde_json::Value;

/// Renders a transcript as plain text, one line per event: the commit's time
/// (`HH:MM:SS`, UTC), the event's sequence number and what happened.
pub(crate) fn render_text(events: &[TranscriptEvent]) -> String {
    let mut out = String::new();
    for event in events {
        let _ = writeln!(out, "{} #{} {}", clock_time(event.at), event.seq, line(&event.entry));
    }
    out
}

fn line(entry: &Entry) -> String {
    match entry {
        Entry::RunStarted { graph_id, graph_version, trigger, forked_from: None } => {
            format!("▶ run started: {graph_id} v{graph_version} {trigger}")
        }
        Entry::RunStarted { graph_id, graph_version, trigger, forked_from: Some(origin) } => {
            format!(
                "▶ run forked from {} at #{}: {graph_id} v{graph_version} {trigger}",
                origin.run_id, origin.seq
            )
        }
        Entry::NodeStarted { node_id, node_type, attempt: 1 } => format!("{node_id} … {node_type}"),
        Entry::NodeStarted { node_id, node_type, attempt } => {
            format!("{node_id} … {node_type} (attempt {attempt})")
        }
        Entry::NodeCompleted { node_id, output: Value::Null } => format!("{node_id} ✓"),
        Entry::NodeCompleted { node_id, output } => format!("{node_id} ✓ {}", short(output)),
        Entry::NodeWaiting { node_id, prompt, actions } => {
            let mut text = format!("{node_id} ⏸ {}", prompt.as_deref().unwrap_or("waiting for an answer"));
            if !actions.is_empty() {
                let _ = write!(text, " [{}]", actions.join(" / "));
            }
            text
        }
        Entry::AnswerReceived { node_id, by, data } => {
            format!("{} → {node_id}: {}", by.as_deref().unwrap_or("someone"), short(data))
        }
        Entry::NotificationSent { node_id, channel, text } => format!("{node_id} 📣 [{channel}] {text}"),
        Entry::AgentMessage { agent, text, .. } => format!("{agent}: {text}"),
        Entry::Custom { node_id, payload } => format!("{node_id} · {}", short(payload)),
        Entry::Progress { node_id, .. } => format!("{node_id} ⊙ progress kept"),
        Entry::NodeFailed { node_id, attempt, error } => format!("{node_id} ✗ attempt {attempt}: {error}"),
        Entry::ErrorRouted { node_id, target } => format!("{node_id} ↪ error route to {target}"),
        Entry::WaitingClosed { node_id } => format!("{node_id} ⏹ no longer waits: another answer came first"),
        Entry::RetryScheduled { node_id, attempt, retry_at } => {
            format!("{node_id} ↻ attempt {attempt} at {}", clock_time(*retry_at))
        }
        Entry::ChildStarted { node_id, run_id, runs_node: true, .. } => {
            format!("{node_id} ⤵ runs in a room of its own: run {run_id}")
        }
        Entry::ChildStarted { node_id, run_id, graph_id, graph_version, runs_node: false } => {
            format!("{node_id} ⤵ child run {run_id}: {graph_id} v{graph_version}")
        }
        Entry::ChildFinished { node_id, run_id, status } => {
            format!("{node_id} ⤴ child run {run_id} {}", status.as_str())
        }
        Entry::RunCompleted => "■ run completed".to_owned(),
        Entry::RunFailed { error } => format!("■ run failed: {error}"),
        Entry::RunCancelled { reason: Some(reason) } => format!("■ run cancelled: {reason}"),
        Entry::RunCancelled { reason: None } => "■ run cancelled".to_owned(),
    }
}

/// A value as JSON, cut to a readable length.
fn short(value: &Value) -> String {
    const MAX: usize = 160;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `HH:MM:SS` (UTC) of a time in milliseconds.
fn clock_time(at: Millis) -> String {
    let seconds = at.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: u64, entry: Entry) -> TranscriptEvent {
        TranscriptEvent { run_id: "r1".into(), seq, at: 3_723_000, entry }
    }

    #[test]
    fn a_transcript_reads_as_a_thread() {
        let text = render_text(&[
            event(
                1,
                Entry::RunStarted {
                    forked_from: None,
                    graph_id: "review".into(),
                    graph_version: 2,
                    trigger: json!({"topic": "rust"}),
                },
            ),
            event(
                2,
                Entry::NodeWaiting {
                    node_id: "review".into(),
                    prompt: Some("Approve?".into()),
                    actions: vec!["approve".into(), "reject".into()],
                },
            ),
            event(
                3,
                Entry::AnswerReceived {
                    node_id: "review".into(),
                    by: Some("ada".into()),
                    data: json!({"action": "approve"}),
                },
            ),
            event(4, Entry::NodeCompleted { node_id: "review".into(), output: json!(null) }),
            event(
                5,
                Entry::NotificationSent {
                    node_id: "tell".into(),
                    channel: "slack".into(),
                    text: "done".into(),
                },
            ),
            event(6, Entry::RunCompleted),
        ]);
        assert_eq!(
            text,
            "\
01:02:03 #1 ▶ run started: review v2 {\"topic\":\"rust\"}
01:02:03 #2 review ⏸ Approve? [approve / reject]
01:02:03 #3 ada → review: {\"action\":\"approve\"}
01:02:03 #4 review ✓
01:02:03 #5 tell 📣 [slack] done
01:02:03 #6 ■ run completed
"
        );
    }

    #[test]
    fn long_values_are_cut_and_times_wrap_at_midnight() {
        let long = json!({"text": "x".repeat(500)});
        assert!(short(&long).chars().count() <= 161);
        assert!(short(&long).ends_with('…'));
        assert_eq!(clock_time(86_400_000 + 61_000), "00:01:01");
    }
}
