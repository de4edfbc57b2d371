//! Run-event hooks: another system hears when a run completes, fails, waits
//! or is cancelled, or a node fails.
//!
//! - [`new_hook`] makes a subscription (checked, with an id and a signing
//!   secret of its own) to store with
//!   [`HookStore::add_hook`](roomkit_graph_store::HookStore::add_hook).
//! - Each commit of a run writes, in its own transaction, a delivery of each
//!   of its events to each hook that hears it (the store's outbox).
//! - [`Sender`] delivers the outbox: an HTTP POST of the event as JSON,
//!   signed like the webhooks the server takes (`X-Roomkit-Timestamp` and
//!   `X-Roomkit-Signature: sha256=<HMAC-SHA256 of "{timestamp}.{body}">`, which
//!   [`roomkit_graph_triggers::verify_delivery`] checks), tried again with
//!   backoff for a day until the receiver answers 2xx. Every attempt is kept
//!   with its delivery. A delivery may arrive more than once (after a crash
//!   between sending it and recording it): its id, in the body and in
//!   `X-Roomkit-Delivery`, is the same each time, for the receiver to drop
//!   the ones it has seen.
//! - A hook reaches public addresses only ([`is_public`]), unless the
//!   sender is told otherwise ([`SenderOptions::private_addresses`]).

mod address;
mod sender;
mod subscription;

pub use address::is_public;
pub use sender::{DELIVERY_HEADER, EVENT_HEADER, HOOK_ATTEMPTS, Sender, SenderOptions};
pub use subscription::{HookError, new_hook};
