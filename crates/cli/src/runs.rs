//! The run commands on the embedded store: `run`, `answer`, `show`, `fork`, `runs`, `cancel`.

use std::collections::HashMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use indicatif::{ProgressBar, ProgressStyle};
use roomkit_graph::{Graph, GraphError};
use roomkit_graph_runner::{LiveEvent, Runner, RunnerError};
use roomkit_graph_store::{Entry, RunCursor, RunFilter, RunRecord, RunStatus, StoreError, TranscriptEvent};
use roomkit_graph_triggers::Scheduler;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::shutdown::{stop_signal, wait_for};
use crate::transcript::render_text;
use crate::validate;

/// How a followed run stopped, as the command's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// Completed: exit 0.
    Completed,
    /// Failed or cancelled: exit 1.
    Ended,
    /// Waits for an answer: exit 3.
    Waiting,
}

/// `run FILE`: stores the graph as a new version, starts it and prints its
/// transcript as it happens. A graph the runner's checks refuse is neither
/// stored nor run: the error names its mistakes as `validate` prints them.
pub(crate) async fn run(
    runner: &Runner,
    org: &str,
    file: &Path,
    trigger: Value,
    json: bool,
) -> anyhow::Result<Stopped> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let graph = Graph::from_json(&text).with_context(|| format!("{} is not a graph", file.display()))?;
    let stored = match runner.save_graph_in(org, &graph).await {
        Err(RunnerError::Graph(GraphError::Invalid(errors))) => {
            let lines: Vec<String> =
                errors.iter().map(|error| format!("\n  {}", validate::line(error))).collect();
            bail!(
                "{}: {}, so it was neither stored nor run:{}",
                file.display(),
                validate::plural(errors.len(), "mistake"),
                lines.concat()
            );
        }
        saved => saved?,
    };
    let run = runner.start_in(org, &stored.graph.id, trigger, None).await?;
    follow(runner, &run.run_id, 0, json).await
}

/// `answer RUN NODE --data JSON`: answers a waiting node and follows the run
/// on; once a child run is over, its parents on.
pub(crate) async fn answer(
    runner: &Runner,
    run_id: &str,
    node: &str,
    data: Value,
    json: bool,
) -> anyhow::Result<Stopped> {
    let before = runner.store().run(run_id).await?;
    // Where the runs it is a child of stand: they go on once it is over.
    let mut parents = Vec::new();
    let mut link = before.parent.clone();
    while let Some(parent) = link {
        let record = runner.store().run(&parent.run_id).await?;
        parents.push((record.run_id, record.last_seq));
        link = record.parent;
    }
    runner.answer(run_id, node, data, Some("cli")).await?;
    let mut stopped = follow(runner, run_id, before.last_seq, json).await?;
    for (parent, last) in parents {
        if stopped == Stopped::Waiting {
            break;
        }
        stopped = follow(runner, &parent, last, json).await?;
    }
    Ok(stopped)
}

/// `fork RUN --at SEQ [--data JSON]`: starts a run from where `run_id` stood
/// at entry `seq` (answering the node it waited on there with `data`) and
/// follows it.
pub(crate) async fn fork(
    runner: &Runner,
    run_id: &str,
    seq: u64,
    data: Option<Value>,
    json: bool,
) -> anyhow::Result<Stopped> {
    let fork = runner.fork(run_id, seq, data, Some("cli")).await?;
    if !json {
        eprintln!("run {} forked from run {run_id} at #{seq}", fork.run_id);
    }
    follow(runner, &fork.run_id, 0, json).await
}

/// Prints the run's transcript from `after` until the run waits or is over.
/// At a person's step on a terminal, asks for the answer; elsewhere, says how
/// to give it.
async fn follow(runner: &Runner, run_id: &str, after: u64, json: bool) -> anyhow::Result<Stopped> {
    let mut last = after;
    // What each waiting node asks (its prompt and actions), as the transcript says.
    let mut asked: HashMap<String, (Option<String>, Vec<String>)> = HashMap::new();
    loop {
        // A run that waits already (answered, its other children still waiting)
        // has nothing to follow: what it committed is printed below.
        let settled = runner.store().run(run_id).await?;
        let follows = settled.status == RunStatus::Running || settled.wake_at.is_some();
        // Print each event as it is committed, up to the run's next wait or its end.
        let mut events = runner.store().follow(run_id, last);
        let mut progress = Progress::new(runner, run_id, json);
        while follows && let Some(event) = progress.next(&mut events).await {
            let event = event?;
            last = event.seq;
            print_events(std::slice::from_ref(&event), json)?;
            if let Entry::NodeStarted { node_id, .. } = &event.entry {
                progress.started(node_id);
            }
            if let Entry::NodeWaiting { node_id, prompt, actions } = &event.entry {
                asked.insert(node_id.clone(), (prompt.clone(), actions.clone()));
                break;
            }
            if event.entry.is_final() || matches!(event.entry, Entry::ChildStarted { .. }) {
                break;
            }
        }
        drop(events);
        // The rest of what is committed already: the other waits of a parallel node.
        for event in runner.store().transcript(run_id, last, 1000).await? {
            last = event.seq;
            print_events(std::slice::from_ref(&event), json)?;
            if let Entry::NodeWaiting { node_id, prompt, actions } = &event.entry {
                asked.insert(node_id.clone(), (prompt.clone(), actions.clone()));
            }
        }
        let record = runner.store().run(run_id).await?;
        match record.status {
            // Still under way, or parked on a timer: keep following.
            RunStatus::Running => continue,
            RunStatus::Waiting if record.wake_at.is_some() => continue,
            RunStatus::Queued => {
                if !json {
                    eprintln!(
                        "run {run_id} is queued: its graph's concurrency limit is reached for its key; \
                         a worker or serve on this database drives it when its turn comes"
                    );
                }
                return Ok(Stopped::Waiting);
            }
            RunStatus::Waiting => {
                // Waiting on a child run: follow it, to its wait or its end.
                if let Some(child) = live_child(runner, &record).await? {
                    if !json {
                        eprintln!("run {run_id}: {} runs child run {}", child.1, child.0);
                    }
                    if Box::pin(follow(runner, &child.0, 0, json)).await? == Stopped::Waiting {
                        return Ok(Stopped::Waiting);
                    }
                    continue;
                }
            }
            status => {
                if !json {
                    eprintln!("run {run_id} {}", status.as_str());
                }
                return Ok(if status == RunStatus::Completed { Stopped::Completed } else { Stopped::Ended });
            }
        }
        // A parallel node's children wait each on their own; any other node alone.
        let waiting: Vec<String> = record.waiting_on().into_iter().map(str::to_owned).collect();
        // What a node asks, if it asked before this follow began.
        let unasked: Vec<String> =
            waiting.iter().filter(|node| !asked.contains_key(*node)).cloned().collect();
        for node in &unasked {
            let earlier = runner.store().transcript(run_id, 0, usize::MAX).await?;
            if let Some(Entry::NodeWaiting { prompt, actions, .. }) = earlier
                .into_iter()
                .map(|event| event.entry)
                .rfind(|entry| matches!(entry, Entry::NodeWaiting { node_id, .. } if node_id == node))
            {
                asked.insert(node.clone(), (prompt, actions));
            }
        }
        if json || !std::io::stdin().is_terminal() {
            for node in &waiting {
                let actions = asked.get(node).map(|(_, actions)| actions.as_slice()).unwrap_or_default();
                eprintln!("run {run_id} waits on {node:?}; answer with:");
                let example =
                    actions.first().map_or_else(|| "{}".to_owned(), |a| json!({"action": a}).to_string());
                eprintln!("  roomkit-graph answer {run_id} {node} --data '{example}'");
            }
            return Ok(Stopped::Waiting);
        }
        // One node at a time: the run says what still waits once it is answered.
        let node = waiting.first().cloned().unwrap_or_default();
        let (prompt, actions) = asked.remove(&node).unwrap_or_default();
        // Ask until the runner takes the answer: it refuses one that does not fit the node.
        loop {
            let data = ask(prompt.as_deref(), &actions)?;
            match runner.answer(run_id, &node, data, Some("terminal")).await {
                Ok(_) => break,
                Err(RunnerError::InvalidAnswer { reason, .. }) => eprintln!("  refused: {reason}"),
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// The child run `record` (a waiting run) waits on, and its subgraph node.
async fn live_child(runner: &Runner, record: &RunRecord) -> anyhow::Result<Option<(String, String)>> {
    Ok(runner
        .children(&record.run_id)
        .await?
        .into_iter()
        .filter(|child| !child.status.is_final())
        .find_map(|child| Some((child.run_id, child.parent?.node_id)))
        .filter(|(_, node)| record.current_node_id.as_deref() == Some(node.as_str())))
}

/// A spinner on the terminal while a step takes long (from [`SPINNER_AFTER`]),
/// showing the node, the time it has taken and the end of an agent's reply as
/// it is written.
struct Progress {
    /// None when not on a terminal, or printing JSON.
    live: Option<tokio::sync::broadcast::Receiver<LiveEvent>>,
    run_id: String,
    /// The node running, since when, and the spinner once shown.
    step: Option<(String, Instant, Option<ProgressBar>)>,
    /// The reply written so far.
    reply: String,
}

/// How long a step runs before a spinner shows.
const SPINNER_AFTER: Duration = Duration::from_millis(300);

impl Progress {
    fn new(runner: &Runner, run_id: &str, json: bool) -> Self {
        let live = (!json && std::io::stderr().is_terminal()).then(|| runner.live());
        Progress { live, run_id: run_id.to_owned(), step: None, reply: String::new() }
    }

    /// A step began.
    fn started(&mut self, node_id: &str) {
        if self.live.is_some() {
            self.step = Some((node_id.to_owned(), Instant::now(), None));
            self.reply.clear();
        }
    }

    /// The next committed event, keeping the spinner turning until it comes;
    /// the spinner is cleared before the event is returned.
    async fn next(
        &mut self,
        events: &mut BoxStream<'static, Result<TranscriptEvent, StoreError>>,
    ) -> Option<Result<TranscriptEvent, StoreError>> {
        let next = loop {
            let (Some(live), Some((node, since, spinner))) = (&mut self.live, &mut self.step) else {
                break events.next().await;
            };
            let wait = SPINNER_AFTER.saturating_sub(since.elapsed());
            tokio::select! {
                event = events.next() => break event,
                token = live.recv() => match token {
                    Ok(token) if token.run_id == self.run_id => {
                        self.reply.push_str(token.payload["text"].as_str().unwrap_or_default());
                    }
                    // Another run's, or some missed: the spinner shows what it has.
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break events.next().await,
                },
                () = tokio::time::sleep(wait), if spinner.is_none() => {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    *spinner = Some(bar);
                }
            }
            if let Some(bar) = spinner {
                bar.set_message(spinner_message(node, &self.reply));
            }
        };
        if let Some((_, _, Some(bar))) = self.step.take() {
            bar.finish_and_clear();
        }
        next
    }
}

/// What the spinner says: the node, and the last words of the reply being written.
fn spinner_message(node: &str, reply: &str) -> String {
    let flat: String = reply.split_whitespace().collect::<Vec<_>>().join(" ");
    let tail: String = flat.chars().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
    match (tail.is_empty(), flat.chars().count() > 60) {
        (true, _) => format!("{node} running"),
        (false, true) => format!("{node}: …{tail}"),
        (false, false) => format!("{node}: {tail}"),
    }
}

/// Asks on the terminal until the answer is an offered action or a JSON object.
fn ask(prompt: Option<&str>, actions: &[String]) -> anyhow::Result<Value> {
    let stdin = std::io::stdin();
    loop {
        let offered = if actions.is_empty() { String::new() } else { format!(" [{}]", actions.join(" / ")) };
        eprint!("? {}{offered} > ", prompt.unwrap_or("answer"));
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("no answer: standard input closed");
        }
        let line = line.trim();
        if actions.iter().any(|a| a == line) {
            return Ok(json!({ "action": line }));
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Object(_)) => return Ok(value),
            _ if actions.is_empty() => eprintln!("  type a JSON object, e.g. {{\"note\": \"ok\"}}"),
            _ => eprintln!("  type one of {} (or a JSON object)", actions.join(", ")),
        }
    }
}

fn print_events(events: &[TranscriptEvent], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for event in events {
            writeln!(out, "{}", serde_json::to_string(event)?)?;
        }
    } else {
        write!(out, "{}", render_text(events))?;
    }
    Ok(())
}

/// `show RUN`: the whole transcript, then (as text) its child runs and where they stand.
pub(crate) async fn show(runner: &Runner, run_id: &str, json: bool) -> anyhow::Result<()> {
    let events = runner.store().transcript(run_id, 0, usize::MAX).await?;
    print_events(&events, json)?;
    if json {
        return Ok(());
    }
    // Its child runs, as they stand now.
    let children = runner.children(run_id).await?;
    let mut out = std::io::stdout().lock();
    for child in children {
        let node = child.parent.as_ref().map_or("", |parent| parent.node_id.as_str());
        let on = child.waiting_on();
        let waits = if on.is_empty() { String::new() } else { format!(" on {}", on.join(", ")) };
        writeln!(
            out,
            "child run {} ({node}): {} {}{waits}",
            child.run_id,
            child.graph_id,
            child.status.as_str()
        )?;
    }
    Ok(())
}

/// `show RUN --at SEQ`: the run as it stood at entry `seq`: its status,
/// node and context as committed with the entry.
pub(crate) async fn show_at(runner: &Runner, run_id: &str, seq: u64, json: bool) -> anyhow::Result<()> {
    let at = runner.store().run_at(run_id, seq).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut shown = serde_json::to_value(&at)?;
        if let Some(object) = shown.as_object_mut() {
            object.insert("run_id".into(), json!(run_id));
        }
        writeln!(out, "{shown}")?;
        return Ok(());
    }
    let position = &at.position;
    let mut standing = position.status.as_str().to_owned();
    match (position.pending.as_slice(), &position.current_node_id) {
        ([], Some(node)) => standing.push_str(&format!(" on {node}")),
        ([], None) => {}
        (pending, _) => standing.push_str(&format!(" on {}", pending.join(", "))),
    }
    if let Some(previous) = &position.previous_node_id {
        standing.push_str(&format!(" (after {previous})"));
    }
    writeln!(out, "run {run_id} at #{seq}: {standing}, {} steps taken", position.steps)?;
    writeln!(out, "{}", serde_json::to_string_pretty(&Value::Object(at.context))?)?;
    Ok(())
}

/// Which pages `runs` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pages {
    /// One page of `size` runs; with `show_cursor`, the next page's cursor
    /// after them.
    One { size: usize, show_cursor: bool },
    /// Every page, of `size` runs each, to the end.
    All { size: usize },
}

/// `runs`: runs matching `filter`, newest first, page by page as `pages` says.
pub(crate) async fn list(
    runner: &Runner,
    mut filter: RunFilter,
    pages: Pages,
    json: bool,
) -> anyhow::Result<()> {
    let size = match pages {
        Pages::One { size, .. } | Pages::All { size } => size,
    };
    loop {
        let page = runner.store().run_page(&filter, size).await?;
        let mut out = std::io::stdout().lock();
        for run in &page.items {
            if json {
                writeln!(out, "{}", serde_json::to_string(run)?)?;
            } else {
                writeln!(out, "{}", run_line(run))?;
            }
        }
        match (pages, page.next_cursor) {
            (Pages::All { .. }, Some(_)) => filter.after = page.items.last().map(RunCursor::after),
            (Pages::One { show_cursor: true, .. }, next) if json => {
                writeln!(out, "{}", json!({ "next_cursor": next }))?;
                return Ok(());
            }
            (Pages::One { show_cursor: true, .. }, next) => {
                writeln!(out, "{}", next.unwrap_or_default())?;
                return Ok(());
            }
            (Pages::One { show_cursor: false, .. }, Some(next)) => {
                eprintln!(
                    "more runs follow: add --cursor {next} for the next page (or --all for every page)"
                );
                return Ok(());
            }
            (_, None) => return Ok(()),
        }
    }
}

fn run_line(run: &RunRecord) -> String {
    format!(
        "{}  {:<9}  {} v{}  at {}",
        run.run_id,
        run.status.as_str(),
        run.graph_id,
        run.graph_version,
        run.current_node_id.as_deref().unwrap_or("-")
    )
}

/// `worker`: drives runs until Ctrl-C or SIGTERM, starts scheduled graphs
/// when they are due, delivers the hooks' outbox, and deletes the runs past
/// their retention. Every poll it takes the runs nobody drives
/// ([`Runner::recover`]), which leaves alone the runs other workers hold.
pub(crate) async fn worker(
    runner: &Runner,
    poll: std::time::Duration,
    driving: crate::driving::Driving,
) -> anyhow::Result<()> {
    let stop = stop_signal();
    tokio::pin!(stop);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(Scheduler::new(runner.clone(), poll).run(wait_for(stopped.clone())));
    let sender = crate::hooks::spawn_sender(runner, driving.hooks, stopped.clone())?;
    let sweeper = crate::retention::spawn_sweeper(runner, stopped.clone());
    let exporter = crate::metrics::serve(runner, driving.metrics, stopped.clone()).await?;
    let mut ticks = tokio::time::interval(poll);
    eprintln!("worker: driving runs, looking for more every {poll:?}");
    loop {
        tokio::select! {
            signal = &mut stop => {
                stopping.send_replace(true);
                signal?;
                scheduler.await.context("the scheduler stopped abnormally")?;
                sender.await.context("the hooks' sender stopped abnormally")?;
                sweeper.await.context("the retention sweep stopped abnormally")?;
                if let Some(exporter) = exporter {
                    exporter.await.context("the metrics listener stopped abnormally")?;
                }
                eprintln!("worker: stopping once the steps in progress are committed");
                return Ok(());
            }
            () = runner.stopped() => {
                stopping.send_replace(true);
                scheduler.await.context("the scheduler stopped abnormally")?;
                sender.await.context("the hooks' sender stopped abnormally")?;
                sweeper.await.context("the retention sweep stopped abnormally")?;
                bail!("worker id {} was taken by another process: stopping", runner.owner());
            }
            _ = ticks.tick() => {
                let picked_up = runner.recover().await?;
                if picked_up > 0 {
                    eprintln!("worker: picked up {picked_up} runs");
                }
            }
        }
    }
}

/// `cancel RUN` (its live child runs with it; a child's parents go on).
pub(crate) async fn cancel(
    runner: &Runner,
    run_id: &str,
    reason: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let run = runner.cancel(run_id, reason).await?;
    // A cancelled child's parents go on (its subgraph node fails): they are
    // driven here until they wait or are over.
    let mut parent = run.parent.clone();
    while let Some(link) = parent {
        let settled = runner.wait(&link.run_id).await?;
        parent = settled.parent.filter(|_| settled.status.is_final());
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&run)?)?;
    } else {
        writeln!(out, "{}", run_line(&run))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::spinner_message;

    #[test]
    fn the_spinner_shows_the_node_and_the_end_of_the_reply() {
        assert_eq!(spinner_message("draft", ""), "draft running");
        assert_eq!(spinner_message("draft", "Hello\n  world"), "draft: Hello world");
        let long = "word ".repeat(30);
        let message = spinner_message("draft", &long);
        assert!(message.starts_with("draft: …") && message.ends_with("word"), "{message}");
        assert_eq!(message.chars().count(), "draft: …".chars().count() + 60);
    }
}
