//! What starts roomkit-graph runs by itself, beside a person or a program
//! calling [`Runner::start_in`](roomkit_graph_runner::Runner::start_in):
//!
//! - [`schedule`]: graphs whose trigger is `{"type": "scheduled", "schedule":
//!   {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}}` are started at each due
//!   time by the [`Scheduler`], once per due time even when several processes
//!   share the database.
//! - [`webhook`]: the signature check of webhook requests (ours, which
//!   covers a timestamp, and GitHub's `X-Hub-Signature-256`).
//! - [`event`]: graphs whose trigger is `{"type": "event", "event": NAME}` are
//!   started when that event is fired.
//!
//! [`TriggerCheck`] tells whether a graph's trigger can work at all (a cron
//! expression that parses, a known time zone) before the graph is stored:
//! register it in the [`Checks`](roomkit_graph::Checks) of every place that
//! accepts graphs.

mod check;
pub mod event;
pub mod schedule;
pub mod webhook;

pub use check::TriggerCheck;
pub use event::fire_event;
pub use schedule::{Schedule, ScheduleError, Scheduler};
pub use webhook::{
    Delivery, MAX_SKEW_SECS, ROOMKIT_SIGNATURE_HEADER, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER,
    Verified, sign, sign_timestamped, verify_delivery, verify_signature,
};
