//! `roomkit-graph validate FILE... [--agents FILE] [--channels FILE]`

use std::io::Write as _;
use std::path::{Path, PathBuf};

use roomkit_graph::{Graph, Limits, ValidationError, ValidationWarning};
use serde_json::{Value, json};

use crate::nodes::{NodeProblem, NodeSetup};

/// One mistake in a graph, from its validation or from checking its nodes
/// against the agents and channels files, or one warning from its validation.
struct Finding {
    code: &'static str,
    node: Option<String>,
    field: Option<String>,
    message: String,
}

impl From<ValidationError> for Finding {
    fn from(error: ValidationError) -> Self {
        Finding { code: error.code.as_str(), node: error.node, field: error.field, message: error.message }
    }
}

impl From<ValidationWarning> for Finding {
    fn from(warning: ValidationWarning) -> Self {
        Finding {
            code: warning.code.as_str(),
            node: warning.node,
            field: warning.field,
            message: warning.message,
        }
    }
}

impl From<NodeProblem> for Finding {
    fn from(problem: NodeProblem) -> Self {
        Finding {
            code: problem.code,
            node: Some(problem.node),
            field: Some(problem.field),
            message: problem.message,
        }
    }
}

impl Finding {
    fn to_json(&self) -> Value {
        json!({"code": self.code, "node": self.node, "field": self.field, "message": self.message})
    }

    /// The finding on one line: `CODE node=N field=F: MESSAGE`.
    fn line(&self) -> String {
        let node = self.node.as_deref().map(|n| format!(" node={n}")).unwrap_or_default();
        let field = self.field.as_deref().map(|f| format!(" field={f}")).unwrap_or_default();
        format!("{}{node}{field}: {}", self.code, self.message)
    }
}

/// What checking one file found.
enum Report {
    /// The file is the agents or channels file given (`"agents"`,
    /// `"channels"`), loaded already.
    Config(&'static str),
    /// The file could not be read or is not a graph.
    Unreadable(String),
    /// The graph's mistakes (none: valid) and, apart, its warnings.
    Checked {
        /// What makes it invalid.
        errors: Vec<Finding>,
        /// What is allowed but likely wrong.
        warnings: Vec<Finding>,
    },
}

impl Report {
    fn is_valid(&self) -> bool {
        match self {
            Report::Config(_) => true,
            Report::Unreadable(_) => false,
            Report::Checked { errors, .. } => errors.is_empty(),
        }
    }
}

fn check(path: &Path, setup: &NodeSetup, limits: &Limits) -> Report {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return Report::Unreadable(format!("cannot read the file: {error}")),
    };
    match Graph::from_json(&text) {
        Ok(graph) => {
            let found = graph.check_with(limits);
            let mut errors: Vec<Finding> = found.errors.into_iter().map(Finding::from).collect();
            errors.extend(setup.check(&graph).into_iter().map(Finding::from));
            Report::Checked { errors, warnings: found.warnings.into_iter().map(Finding::from).collect() }
        }
        Err(error) => Report::Unreadable(error.to_string()),
    }
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
    let setup = NodeSetup::load(agents, channels)?;
    let reports: Vec<(&PathBuf, Report)> = files
        .iter()
        .map(|file| {
            let report = if same_file(file, agents) {
                Report::Config("agents")
            } else if same_file(file, channels) {
                Report::Config("channels")
            } else {
                check(file, &setup, limits)
            };
            (file, report)
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
            Report::Checked { errors, warnings } => {
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
                    writeln!(out, "  {}", error.line())?;
                }
                for warning in warnings {
                    writeln!(out, "  warning: {}", warning.line())?;
                }
            }
        }
    }
    Ok(valid)
}

/// `count` and `what`, plural when not 1: `1 mistake`, `2 warnings`.
fn plural(count: usize, what: &str) -> String {
    format!("{count} {what}{}", if count == 1 { "" } else { "s" })
}

fn report_json(file: &Path, report: &Report) -> Value {
    match report {
        Report::Config(kind) => {
            json!({"file": file, "valid": true, "config": kind, "errors": [], "warnings": []})
        }
        Report::Unreadable(why) => {
            json!({"file": file, "valid": false, "error": why, "errors": [], "warnings": []})
        }
        Report::Checked { errors, warnings } => json!({
            "file": file,
            "valid": errors.is_empty(),
            "errors": errors.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        }),
    }
}
