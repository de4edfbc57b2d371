//! What a process that drives runs (`serve`, `worker`) is told beside them:
//! how many it drives at once, where its hooks may send, where its metrics
//! are served and its traces sent.

use std::num::NonZeroUsize;

use clap::Args;
use roomkit_graph_runner::Runner;

use crate::hooks::HookOptions;
use crate::metrics::MetricsOptions;
use crate::traces::TraceOptions;

/// The options `serve` and `worker` share.
#[derive(Args, Clone, Default)]
pub(crate) struct Driving {
    /// Drives at most this many runs at a time (runs waiting on a person, a
    /// timer or a child do not count); the others are left for other
    /// processes, or for this one as its runs park or end.
    #[arg(long, env = "ROOMKIT_GRAPH_MAX_RUNS", value_parser = clap::value_parser!(u32).range(1..))]
    max_runs: Option<u32>,
    #[command(flatten)]
    pub(crate) hooks: HookOptions,
    #[command(flatten)]
    pub(crate) metrics: MetricsOptions,
    #[command(flatten)]
    pub(crate) traces: TraceOptions,
}

impl Driving {
    /// `runner`, driving at most `--max-runs` runs at a time when given.
    pub(crate) fn limit(&self, runner: Runner) -> Runner {
        match self.max_runs.and_then(|max| NonZeroUsize::new(usize::try_from(max).unwrap_or(usize::MAX))) {
            Some(max) => runner.with_max_runs(max),
            None => runner,
        }
    }
}
