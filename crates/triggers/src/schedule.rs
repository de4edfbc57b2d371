//! Scheduled triggers: a cron expression in a time zone, and the loop that
//! starts runs at each due time.
//!
//! Every process that runs a [`Scheduler`] (each `serve` and `worker`) looks
//! for due times; the run of a due time is started with the key
//! `schedule:ORG:GRAPH:MILLIS`, which the store lets only one run have, so a
//! due time fires once however many processes see it.

use std::collections::HashSet;
use std::str::FromStr as _;
use std::time::Duration;

use chrono::TimeZone as _;
use chrono_tz::Tz;
use croner::Cron;
use roomkit_graph::Trigger;
use roomkit_graph_runner::{Runner, RunnerError};
use roomkit_graph_store::{Millis, RunKey, RunRecord, StoreError};
use serde_json::{Value, json};

/// At most this many due times of one graph are fired per look (a process
/// that was paused does not start a flood of runs).
const MAX_CATCH_UP: usize = 10;

/// Why a schedule cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A scheduled trigger without `schedule.cron`.
    #[error("a scheduled trigger needs trigger.schedule.cron")]
    MissingCron,
    /// The cron expression does not parse.
    #[error("trigger.schedule.cron {cron:?} is not a cron expression: {reason}")]
    BadCron {
        /// The expression.
        cron: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not in the IANA database.
    #[error("unknown time zone {0:?} in trigger.schedule.timezone")]
    UnknownTimeZone(String),
}

impl ScheduleError {
    /// The field of the graph at fault: `trigger.schedule.cron` or
    /// `trigger.schedule.timezone`.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::MissingCron | ScheduleError::BadCron { .. } => "trigger.schedule.cron",
            ScheduleError::UnknownTimeZone(_) => "trigger.schedule.timezone",
        }
    }
}

/// A parsed schedule: when a scheduled graph is due.
///
/// ```
/// use roomkit_graph::Trigger;
/// use roomkit_graph_triggers::Schedule;
/// use serde_json::json;
///
/// let trigger: Trigger = serde_json::from_value(json!({"type": "scheduled",
///     "schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}}))?;
/// let schedule = Schedule::of(&trigger)?.expect("a scheduled trigger");
/// // 2026-01-01T00:00Z to 2026-01-03T00:00Z: 09:00 in Paris is 08:00 UTC in winter.
/// let due = schedule.due_between(1_767_225_600_000, 1_767_398_400_000, 10);
/// assert_eq!(due, [1_767_254_400_000, 1_767_340_800_000]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    expression: String,
    zone: Tz,
}

impl Schedule {
    /// The schedule of `trigger`: `None` for a trigger that is not scheduled.
    pub fn of(trigger: &Trigger) -> Result<Option<Schedule>, ScheduleError> {
        let Trigger::Scheduled { schedule, .. } = trigger else { return Ok(None) };
        let schedule = schedule.as_ref();
        let field = |key: &str| schedule.and_then(|s| s.get(key)).and_then(Value::as_str);
        let expression = field("cron").ok_or(ScheduleError::MissingCron)?;
        let cron = Cron::from_str(expression)
            .map_err(|err| ScheduleError::BadCron { cron: expression.to_owned(), reason: err.to_string() })?;
        let zone = match field("timezone") {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| ScheduleError::UnknownTimeZone(name.to_owned()))?,
        };
        Ok(Some(Schedule { cron, expression: expression.to_owned(), zone }))
    }

    /// The due times after `after` up to `until` (inclusive), in milliseconds
    /// since the epoch, at most `limit` of them (the latest ones).
    pub fn due_between(&self, after: Millis, until: Millis, limit: usize) -> Vec<Millis> {
        let Some(start) = self.zone.timestamp_millis_opt(after).single() else { return Vec::new() };
        let mut due = Vec::new();
        for time in self.cron.iter_after(start) {
            let at = time.timestamp_millis();
            if at > until {
                break;
            }
            due.push(at);
            if due.len() > limit {
                due.remove(0);
            }
        }
        due
    }

    /// The trigger data of the run due at `at`: when, in the schedule's time
    /// zone, and the schedule.
    fn trigger_data(&self, at: Millis) -> Value {
        let when = self.zone.timestamp_millis_opt(at).single().map(|t| t.to_rfc3339());
        json!({"scheduled_at": when, "cron": self.expression, "timezone": self.zone.name()})
    }
}

/// Starts the runs of scheduled graphs when they are due, on its runner's
/// clock: the time due times are judged at and the ticks it waits both come
/// from [`Runner::clock`].
pub struct Scheduler {
    runner: Runner,
    tick: Duration,
    /// Due times after this have not been looked at yet.
    checked_until: Millis,
    /// Graph versions whose broken schedule was logged already.
    reported: HashSet<(String, String, u64)>,
}

impl Scheduler {
    /// A scheduler on `runner`'s store that looks for due times every `tick`
    /// of the runner's clock, from now on (due times before it started are
    /// not fired).
    pub fn new(runner: Runner, tick: Duration) -> Self {
        let checked_until = runner.now();
        Scheduler { runner, tick, checked_until, reported: HashSet::new() }
    }

    /// Looks for due times every tick until `stop` completes.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = self.runner.clock().sleep(self.tick) => {}
            }
            if let Err(error) = self.fire_due(self.runner.now()).await {
                tracing::warn!(%error, "looking for scheduled runs failed; trying again at the next tick");
            }
        }
    }

    /// Starts the run of every due time up to `now` not looked at yet, for
    /// every scheduled graph of every organization. Returns the runs this
    /// process started (a due time another process fired first is skipped).
    pub async fn fire_due(&mut self, now: Millis) -> Result<Vec<RunRecord>, RunnerError> {
        let after = self.checked_until;
        let mut started = Vec::new();
        for stored in self.runner.store().list_graphs(None).await? {
            let schedule = match Schedule::of(&stored.graph.trigger) {
                Ok(Some(schedule)) => schedule,
                Ok(None) => continue,
                Err(error) => {
                    let key = (stored.org.clone(), stored.graph.id.clone(), stored.version);
                    if self.reported.insert(key) {
                        tracing::warn!(org = %stored.org, graph = %stored.graph.id, %error, "schedule ignored");
                    }
                    continue;
                }
            };
            for at in schedule.due_between(after, now, MAX_CATCH_UP) {
                let key = RunKey::new(format!("schedule:{}:{}:{at}", stored.org, stored.graph.id));
                let data = schedule.trigger_data(at);
                match self.runner.start_in(&stored.org, &stored.graph.id, data, Some(key)).await {
                    Ok(run) => {
                        tracing::info!(org = %stored.org, graph = %stored.graph.id, run = %run.run_id, "scheduled run started");
                        started.push(run);
                    }
                    Err(RunnerError::Store(StoreError::Duplicate { .. })) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        self.checked_until = now;
        Ok(started)
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("tick", &self.tick)
            .field("checked_until", &self.checked_until)
            .finish()
    }
}
