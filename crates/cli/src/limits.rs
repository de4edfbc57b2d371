//! The limits every command keeps to (`--max-json-depth`, `--max-output-bytes`,
//! `--max-context-bytes`, `--max-graph-nodes`, `--max-steps`, `--step-ceiling`),
//! and JSON read from the command line within them.

use anyhow::{Context as _, bail};
use clap::Args;
use roomkit_graph::Limits;
use roomkit_graph::limits::MAX_JSON_DEPTH;
use roomkit_graph_runner::{DEFAULT_MAX_STEPS, DEFAULT_STEP_CEILING, Runner};
use serde_json::Value;

/// The limits' options, with the core's defaults.
#[derive(Args, Clone, Debug)]
pub(crate) struct LimitOptions {
    /// How deep JSON may nest (trigger data, answers, node outputs, graphs).
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_MAX_JSON_DEPTH", default_value_t = Limits::default().json_depth,
          value_parser = parse_depth)]
    max_json_depth: usize,
    /// How large one node's output may be, in bytes of JSON: a step past it fails the run.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_MAX_OUTPUT_BYTES", default_value_t = Limits::default().output_bytes)]
    max_output_bytes: usize,
    /// How large a run's context (all its outputs) may be, in bytes of JSON.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_MAX_CONTEXT_BYTES", default_value_t = Limits::default().context_bytes)]
    max_context_bytes: usize,
    /// How many nodes a graph may have.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_MAX_GRAPH_NODES", default_value_t = Limits::default().nodes)]
    max_graph_nodes: usize,
    /// How many steps a run may execute when its graph sets no `max_steps`: it
    /// fails with a step_limit error before the next one.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_MAX_STEPS", default_value_t = DEFAULT_MAX_STEPS,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_steps: u64,
    /// The most steps any run may execute, whatever its graph's `max_steps` says.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_STEP_CEILING", default_value_t = DEFAULT_STEP_CEILING,
          value_parser = clap::value_parser!(u64).range(1..))]
    step_ceiling: u64,
}

/// A JSON depth limit: 2 to [`MAX_JSON_DEPTH`], so what stores wrap around a
/// value can always be read back.
fn parse_depth(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(depth) if (2..=MAX_JSON_DEPTH).contains(&depth) => Ok(depth),
        _ => Err(format!("a whole number from 2 to {MAX_JSON_DEPTH} is needed")),
    }
}

impl LimitOptions {
    /// The core's limits with these options.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            json_depth: self.max_json_depth,
            output_bytes: self.max_output_bytes,
            context_bytes: self.max_context_bytes,
            nodes: self.max_graph_nodes,
            ..Limits::default()
        }
    }

    /// `runner` with these options' step limits.
    pub(crate) fn limit_steps(&self, runner: Runner) -> Runner {
        runner.with_max_steps(self.max_steps).with_step_ceiling(self.step_ceiling)
    }
}

/// Reads the JSON of an option (`what`, such as `--data`) within the depth
/// limit, checked on the text before it is read (as the HTTP API does).
pub(crate) fn json_option(text: &str, what: &str, limits: &Limits) -> anyhow::Result<Value> {
    if let Err(error) = limits.check_text(text.as_bytes()) {
        bail!("{what} {error}");
    }
    serde_json::from_str(text).map_err(|error| anyhow::anyhow!("{what} is not JSON: {error}"))
}

/// Reads trigger data given as JSON or as `@FILE`.
pub(crate) fn input(input: Option<&str>, limits: &Limits) -> anyhow::Result<Value> {
    match input {
        None => Ok(Value::Object(serde_json::Map::new())),
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
                json_option(&text, &format!("--input file {path}"), limits)
            }
            None => json_option(text, "--input", limits),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_json_is_refused_in_plain_words() {
        let limits = Limits::default();
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        let error = json_option(&deep, "--data", &limits).unwrap_err().to_string();
        assert_eq!(error, "--data nests 70 levels deep, more than the limit of 64");
        let deeper = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let error = json_option(&deeper, "--data", &limits).unwrap_err().to_string();
        assert_eq!(error, "--data nests 200 levels deep, more than the limit of 64");
        assert_eq!(input(Some("{\"a\": 1}"), &limits).unwrap()["a"], 1);
    }
}
