//! The graph commands on the database: `graph put`, `graph list` and
//! `graph show`, so graphs (a subgraph's, a scheduled one's) can be stored
//! and read without running them.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use roomkit_graph::Graph;
use roomkit_graph_runner::Runner;
use roomkit_graph_store::{StoreError, StoredGraph};
use serde_json::json;

use crate::validate;

/// `graph put FILE...`: checks the files together as `run` checks one (a
/// subgraph node may name a graph stored already or one of the files) and,
/// when none has a mistake, stores each as the next version of its id (in
/// the order given), printing `ID vN` per file; with a mistake anywhere,
/// nothing is stored and the error names each file's mistakes.
pub(crate) async fn put(runner: &Runner, org: &str, files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let mut graphs = Vec::with_capacity(files.len());
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        graphs.push(Graph::from_json(&text).with_context(|| format!("{} is not a graph", file.display()))?);
    }
    // Checked together: a subgraph node may name a graph stored or given.
    let found = runner.check_graphs_in(org, &graphs).await?;
    let refused: Vec<String> = files
        .iter()
        .zip(&found)
        .filter(|(_, found)| !found.is_valid())
        .map(|(file, found)| {
            let lines: Vec<String> =
                found.errors.iter().map(|error| format!("\n  {}", validate::line(error))).collect();
            format!(
                "{}: {}:{}",
                file.display(),
                validate::plural(found.errors.len(), "mistake"),
                lines.concat()
            )
        })
        .collect();
    if !refused.is_empty() {
        bail!("no graph was stored:\n{}", refused.join("\n"));
    }
    let stored = runner.save_graphs_in(org, &graphs).await?;
    let mut out = std::io::stdout().lock();
    for (file, stored) in files.iter().zip(stored) {
        if json {
            let line =
                json!({"file": file.display().to_string(), "id": stored.graph.id, "version": stored.version});
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{} v{}", stored.graph.id, stored.version)?;
        }
    }
    Ok(())
}

/// `graph list`: the latest version of every graph of `org`, by id: `ID vN
/// NAME` (with --json, a line `{"id", "version", "name", "created_at"}` each).
pub(crate) async fn list(runner: &Runner, org: &str, json: bool) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = runner.store().list_graphs_after(org, after.as_deref(), PAGE).await?;
        let mut out = std::io::stdout().lock();
        for stored in &page {
            if json {
                writeln!(out, "{}", summary(stored))?;
            } else {
                writeln!(out, "{}  v{}  {}", stored.graph.id, stored.version, stored.graph.name)?;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.graph.id.clone()),
            _ => return Ok(()),
        }
    }
}

/// How many graphs `graph list` reads at a time.
const PAGE: usize = 100;

fn summary(stored: &StoredGraph) -> serde_json::Value {
    json!({
        "id": stored.graph.id,
        "version": stored.version,
        "name": stored.graph.name,
        "created_at": stored.created_at,
    })
}

/// `graph show ID [--version N]`: the graph's JSON, as stored (the latest
/// version unless one is named).
pub(crate) async fn show(runner: &Runner, org: &str, id: &str, version: Option<u64>) -> anyhow::Result<()> {
    let stored = match runner.store().graph(org, id, version).await {
        Err(StoreError::NotFound(_)) => match version {
            Some(version) => match runner.store().latest_graph_version(org, id).await {
                Ok(latest) => bail!("graph {id:?} has no version {version} (its latest is {latest})"),
                Err(StoreError::NotFound(_)) => bail!("no graph {id:?} is stored"),
                Err(error) => return Err(error.into()),
            },
            None => bail!("no graph {id:?} is stored"),
        },
        found => found?,
    };
    writeln!(std::io::stdout().lock(), "{}", stored.graph.to_json_pretty())?;
    Ok(())
}
