//! `roomkit-graph validate FILE... [--agents FILE] [--channels FILE]`

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use roomkit_graph::{Checks, Graph, Limits, Validation, ValidationError, ValidationWarning};
use serde_json::{Value, json};

use crate::nodes::NodeSetup;

/// A mistake on one line: `CODE node=N field=F: MESSAGE`, as `validate`
/// prints it and `run` names the mistakes of a graph it refuses.
pub(crate) fn line(error: &ValidationError) -> String {
    finding_line(error.code.as_str(), error.node.as_deref(), error.field.as_deref(), &error.message)
}

/// A warning on one line, shaped like a mistake.
fn warning_line(warning: &ValidationWarning) -> String {
    finding_line(warning.code.as_str(), warning.node.as_deref(), warning.field.as_deref(), &warning.message)
}

fn finding_line(code: &str, node: Option<&str>, field: Option<&str>, message: &str) -> String {
    let node = node.map(|n| format!(" node={n}")).unwrap_or_default();
    let field = field.map(|f| format!(" field={f}")).unwrap_or_default();
    format!("{code}{node}{field}: {message}")
}

/// What checking one file found.
enum Report {
    /// The file is the agents or channels file given (`"agents"`,
    /// `"channels"`), loaded already.
    Config(&'static str),
    /// The file could not be read or is not a graph.
    Unreadable(String),
    /// The graph's mistakes (none: valid) and, apart, its warnings.
    Checked(Validation),
}

impl Report {
    fn is_valid(&self) -> bool {
        match self {
            Report::Config(_) => true,
            Report::Unreadable(_) => false,
            Report::Checked(found) => found.is_valid(),
        }
    }
}

/// Reads the graph in `path`, or says why it is not one.
fn read(path: &Path) -> Result<Graph, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read the file: {error}"))?;
    Graph::from_json(&text).map_err(|error| error.to_string())
}

/// Checks `graph`, one of `family` (the graph ids of the files checked
/// together): a subgraph node naming a graph none of them is gets a
/// warning, as that graph must be stored first.
fn check(graph: &Graph, family: &HashSet<String>, checks: &Checks, limits: &Limits) -> Report {
    let mut found = checks.check(graph, limits);
    let not_given = graph.subgraph_refs().into_iter().filter(|target| !family.contains(&target.graph_id));
    found.warnings.extend(not_given.map(|target| target.not_given()));
    Report::Checked(found)
}

/// Whether `a` and `b` name the same file.
fn same_file(a: &Path, b: Option<&Path>) -> bool {
    let canonical = |path: &Path| std::fs::canonicalize(path).ok();
    b.is_some_and(|b| canonical(a).is_some_and(|a| Some(a) == canonical(b)))
}

/// Checks every file and prints the findings. Returns whether all are valid;
/// fails when the agents or channels file cannot be loaded.
pub(crate) fn run(
    files: &[PathBuf],
    agents: Option<&Path>,
    channels: Option<&Path>,
    limits: &Limits,
    json: bool,
) -> anyhow::Result<bool> {
    let checks = NodeSetup::load(agents, channels)?.checks();
    let read: Vec<(&PathBuf, Result<Graph, Report>)> = files
        .iter()
        .map(|file| {
            let graph = if same_file(file, agents) {
                Err(Report::Config("agents"))
            } else if same_file(file, channels) {
                Err(Report::Config("channels"))
            } else {
                read(file).map_err(Report::Unreadable)
            };
            (file, graph)
        })
        .collect();
    let family: HashSet<String> =
        read.iter().filter_map(|(_, graph)| Some(graph.as_ref().ok()?.id.clone())).collect();
    let reports: Vec<(&PathBuf, Report)> = read
        .into_iter()
        .map(|(file, graph)| {
            (file, graph.map_or_else(|report| report, |graph| check(&graph, &family, &checks, limits)))
        })
        .collect();
    let valid = reports.iter().all(|(_, report)| report.is_valid());
    let mut out = std::io::stdout().lock();
    if json {
        let files: Vec<Value> = reports.iter().map(|(file, report)| report_json(file, report)).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({"valid": valid, "files": files}))?)?;
        return Ok(valid);
    }
    for (file, report) in &reports {
        let file = file.display();
        match report {
            Report::Config(kind) => writeln!(out, "{file}: ok ({kind} file)")?,
            Report::Unreadable(why) => writeln!(out, "{file}: not a graph: {why}")?,
            Report::Checked(Validation { errors, warnings }) => {
                let mut counts = Vec::new();
                if !errors.is_empty() {
                    counts.push(plural(errors.len(), "mistake"));
                }
                if !warnings.is_empty() {
                    counts.push(plural(warnings.len(), "warning"));
                }
                match (errors.is_empty(), counts.is_empty()) {
                    (true, true) => writeln!(out, "{file}: ok")?,
                    (true, false) => writeln!(out, "{file}: ok, {}", counts.join(", "))?,
                    (false, _) => writeln!(out, "{file}: {}", counts.join(", "))?,
                }
                for error in errors {
                    writeln!(out, "  {}", line(error))?;
                }
                for warning in warnings {
                    writeln!(out, "  warning: {}", warning_line(warning))?;
                }
            }
        }
    }
    Ok(valid)
}

/// `count` and `what`, plural when not 1: `1 mistake`, `2 warnings`.
pub(crate) fn plural(count: usize, what: &str) -> String {
    format!("{count} {what}{}", if count == 1 { "" } else { "s" })
}

fn report_json(file: &Path, report: &Report) -> Value {
    // A path that is not UTF-8 is shown, not refused.
    let file = file.display().to_string();
    match report {
        Report::Config(kind) => {
            json!({"file": file, "valid": true, "config": kind, "errors": [], "warnings": []})
        }
        Report::Unreadable(why) => {
            json!({"file": file, "valid": false, "error": why, "errors": [], "warnings": []})
        }
        Report::Checked(found) => json!({
            "file": file,
            "valid": found.is_valid(),
            "errors": found.errors,
            "warnings": found.warnings,
        }),
    }
}
