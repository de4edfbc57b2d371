//! Durable runs: the runner executes stored graphs on tokio tasks and commits
//! every step to a [`Store`](roomkit_graph_store::Store) (its outputs, the run's new position and its
//! transcript entries, in one transaction) before the next step begins.
//!
//! - [`Runner::start`] opens a run's room and drives it until it completes,
//!   fails or parks on a waiting node.
//! - [`Runner::answer`] resumes a parked run; it is refused, changing nothing,
//!   when the run is not waiting on that node or the answer does not fit it.
//! - [`Runner::recover`] picks up the runs nobody drives: those a stopped
//!   process left running.
//! - A store that fails while a run is driven (locked, out of reach) stops
//!   the step in progress; the run's task drives it again after a pause that
//!   doubles each time, and after a few failures in a row leaves it to
//!   [`Runner::recover`].
//! - A delay node parks its run on a durable timer: no task waits, and the
//!   runner's timer loop (in every process sharing the store) wakes the run
//!   when it is due, also after a restart.
//!
//! # Leases: one driver per run
//!
//! Several runners, in one process or many, may share a store. Each has an
//! [owner id](Runner::owner), and drives a running run only while it holds the
//! run's [`Lease`](roomkit_graph_store::Lease) (for [`Runner::lease`], 30 s unless set with
//! [`Runner::with_lease`]):
//!
//! - **Claim.** Starting a run, answering it, waking it on its timer and
//!   [`Runner::recover`] take the lease in the same transaction that sets the
//!   run running (or, for recovery, before driving it). Recovery only takes
//!   runs nobody holds a live lease on, so any number of workers may call it
//!   as often as they like: a step's handler is never run by two of them at once.
//! - **Renew.** While it drives a run, the runner extends the lease with the
//!   step commits, and in between (a long step, a retry's backoff) renews it
//!   each time a third of it has passed.
//! - **Release.** Parking (on a person or a timer), completing, failing or
//!   being cancelled releases the lease in the commit that does it;
//!   [`Runner::shutdown`] releases the leases of the runs it stops driving, so
//!   another process can take them at once.
//! - **Expiry.** A lease whose runner died (or stalled past it) expires, and the
//!   run can be claimed again: it is picked up one lease duration after its
//!   last renewal at the latest.
//! - **Losing it.** A runner whose commit or renewal is refused (the run was
//!   cancelled, or another process took the expired lease) stops driving the
//!   run at once, dropping the step in progress. A cancel always wins.
//!
//! # Delivery: at least once
//!
//! A step's effects are committed after its handler returns. If the process
//! dies between a handler's side effect (an e-mail sent, an API called) and
//! the commit, the step runs again after recovery, once the dead process's
//! lease has expired. The same happens when a runner stalls past its lease (a
//! step that blocks its thread, a paused process) and another takes the run:
//! the stalled step's commit is then refused. Handlers with outside side
//! effects should make them idempotent, keyed on the run id and node id
//! ([`roomkit_graph::Scope::run_id`], [`roomkit_graph::Scope::node`]).
//!
//! # Worker ids: restarts that take back their runs at once
//!
//! A runner made with [`Runner::new`] has an owner id of its own, new in every
//! process: after a crash its runs wait for their leases to expire. One made
//! with [`Runner::register`] is worker `ID`: it takes its leases as `ID`, so
//! the next process started as `ID` takes those runs back at once
//! ([`Runner::recover`]). The id is registered in the store and renewed every
//! heartbeat, so two live processes are never the same worker: the second is
//! refused with [`RegisterError::Taken`].
//!
//! # Memory
//!
//! A runner keeps nothing of a run once its task ends: a finished task is
//! freed at once, and the compiled graphs it keeps are bounded
//! ([`Runner::with_graph_cache`]).
//!
//! # Time
//!
//! A runner reads every "now" (leases, timers and their due times, commits,
//! worker registrations) and waits every wait on its clock
//! ([`RunnerBuilder::clock`]; the system's unless set), and gives the store
//! the time it judges leases and registrations at. A test moves a
//! [`roomkit_graph::ManualClock`] to expire a lease or fire a timer at once.
//!
//! # Layout
//!
//! - `runner`: [`Runner`] and [`RunnerBuilder`], the public face.
//! - `supervisor`: a task per driven run, driven again after a store failure.
//! - `drive`: one run driven step by step, its lease kept alongside.
//! - `timers`: the loop that wakes runs whose timer is due.
//! - `commit`: what happened to a run, as the commit that records it.
//! - `cache`: the compiled graphs and the settings they are compiled with.
//! - `lease`, `worker`: who the runner is in its leases; worker ids.
//! - `tasks`, `shared`, `time`: the run tasks and the stop, what the parts
//!   share, time through the clock.

mod cache;
mod children;
mod commit;
mod drive;
mod error;
mod fork;
mod lease;
mod live;
pub mod metrics;
mod progress;
mod runner;
mod shared;
mod supervisor;
mod tasks;
mod time;
mod timers;
mod trace;
mod worker;

pub use cache::{DEFAULT_GRAPH_CACHE, DEFAULT_MAX_STEPS, DEFAULT_STEP_CEILING};
pub use error::RunnerError;
pub use lease::DEFAULT_LEASE;
pub use live::LiveEvent;
pub use runner::{Runner, RunnerBuilder};
pub use worker::{DEFAULT_HEARTBEAT, RegisterError};
