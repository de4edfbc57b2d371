//! `roomkit-graph validate FILE...`

use std::io::Write as _;
use std::path::{Path, PathBuf};

use roomkit_graph::{Graph, ValidationError};
use serde_json::{Value, json};

/// What checking one file found.
enum Report {
    /// The file could not be read or is not a graph.
    Unreadable(String),
    /// The graph's mistakes (none: valid).
    Checked(Vec<ValidationError>),
}

fn check(path: &Path) -> Report {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return Report::Unreadable(format!("cannot read the file: {error}")),
    };
    match Graph::from_json(&text) {
        Ok(graph) => Report::Checked(graph.validate()),
        Err(error) => Report::Unreadable(error.to_string()),
    }
}

/// Checks every file and prints the findings. Returns whether all are valid.
pub(crate) fn run(files: &[PathBuf], json: bool) -> anyhow::Result<bool> {
    let reports: Vec<(&PathBuf, Report)> = files.iter().map(|file| (file, check(file))).collect();
    let valid =
        reports.iter().all(|(_, report)| matches!(report, Report::Checked(errors) if errors.is_empty()));
    let mut out = std::io::stdout().lock();
    if json {
        let files: Vec<Value> = reports.iter().map(|(file, report)| report_json(file, report)).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({"valid": valid, "files": files}))?)?;
        return Ok(valid);
    }
    for (file, report) in &reports {
        let file = file.display();
        match report {
            Report::Unreadable(why) => writeln!(out, "{file}: not a graph: {why}")?,
            Report::Checked(errors) if errors.is_empty() => writeln!(out, "{file}: ok")?,
            Report::Checked(errors) => {
                writeln!(
                    out,
                    "{file}: {} mistake{}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                )?;
                for error in errors {
                    let node = error.node.as_deref().map(|n| format!(" node={n}")).unwrap_or_default();
                    let field = error.field.as_deref().map(|f| format!(" field={f}")).unwrap_or_default();
                    writeln!(out, "  {}{node}{field}: {}", error.code, error.message)?;
                }
            }
        }
    }
    Ok(valid)
}

fn report_json(file: &Path, report: &Report) -> Value {
    match report {
        Report::Unreadable(why) => json!({"file": file, "valid": false, "error": why, "errors": []}),
        Report::Checked(errors) => json!({"file": file, "valid": errors.is_empty(), "errors": errors}),
    }
}
