//! The store contract: the behaviour every backend must show, written once as
//! tests that each backend runs against a real database of its own (feature
//! `contract`, for backends' test builds only).
//!
//! A backend gives a fresh, empty [`Database`] per test; a test opens as many
//! stores on it as it needs, each standing for another process sharing the
//! database. [`contract_tests!`](crate::contract_tests) makes one
//! `#[tokio::test]` of every test of the contract, by concern:
//!
//! - [`graphs`]: graph versions, per organization, listed a page at a time;
//! - [`access`]: runs, tokens and secrets kept apart per organization;
//! - [`runs`]: runs and their steps, the version guard, durability, racing commits;
//! - [`keys`]: run keys, held once, telling a repeated request from another;
//! - [`lists`]: runs listed by filter and a page at a time;
//! - [`transcripts`]: transcripts read a page at a time;
//! - [`follow`]: following a transcript live, from this store's commits and another's;
//! - [`leases`]: who may drive a running run;
//! - [`workers`]: worker ids held by one live process, and the runs they hold;
//! - [`hooks`]: run-event hooks' deliveries, made by commits, claimed and tried again;
//! - [`retention`]: runs and graph versions deleted, finished runs swept;
//! - [`queue`]: runs past their key's concurrency limit queued, and let go in order.
//!
//! ```text
//! // crates/<backend>/tests/contract.rs
//! struct Fresh { /* what keeps the database: a directory, a URL */ }
//!
//! #[async_trait::async_trait]
//! impl roomkit_graph_store::contract::Database for Fresh { /* open, ... */ }
//!
//! async fn database() -> Fresh { /* a new, empty database */ }
//!
//! roomkit_graph_store::contract_tests!(database);
//! ```
#![allow(clippy::unwrap_used, reason = "a contract test fails loudly, with the store's error")]

pub mod access;
pub mod children;
pub mod fixtures;
pub mod follow;
pub mod graphs;
pub mod hooks;
pub mod keys;
pub mod leases;
pub mod lists;
pub mod queue;
pub mod retention;
pub mod runs;
pub mod transcripts;
pub mod workers;

use std::sync::Arc;

use async_trait::async_trait;

use crate::Store;

/// A fresh, empty database of one backend, for one contract test.
#[async_trait]
pub trait Database: Send + Sync {
    /// A new store on the database: each call opens another handle with its
    /// own connections, as another process sharing the database would have.
    async fn open(&self) -> Arc<dyn Store>;
}

/// Makes one `#[tokio::test]` of every contract test, in a module per
/// concern, each on a fresh database from `$database`: the name of an
/// `async fn` of the calling module that returns a [`Database`].
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) among
/// its dev-dependencies.
#[macro_export]
macro_rules! contract_tests {
    ($database:ident) => {
        $crate::contract_tests!(@concerns $database;
            graphs {
                versions_count_up_per_id_and_the_latest_is_the_default,
                the_same_graph_id_in_two_organizations_is_two_graphs,
                graphs_are_listed_by_id_a_page_at_a_time_with_their_latest_versions,
                a_graphs_versions_are_listed_newest_first_a_page_at_a_time,
            }
            access {
                runs_belong_to_their_graphs_organization,
                tokens_are_found_by_hash_only_and_never_replaced,
                tokens_are_listed_revoked_and_their_use_recorded,
                secrets_are_kept_per_organization_and_graph,
            }
            runs {
                load_run_reproduces_the_engine_state_after_every_step,
                a_runs_context_keeps_the_order_its_entries_were_first_written_in,
                a_stale_commit_conflicts_and_changes_nothing,
                a_commit_that_writes_outputs_without_an_entry_is_refused_and_changes_nothing,
                committed_steps_survive_closing_and_reopening_the_store,
                sixty_four_concurrent_commits_on_sixty_four_runs_all_land,
                racing_commits_on_one_run_let_exactly_one_through,
                a_runs_step_count_and_pending_children_are_kept_and_cleared,
                a_run_opened_on_pending_children_keeps_them,
                an_entry_with_an_error_beside_its_output_reads_back_whole,
            }
            children {
                a_child_opens_with_the_step_of_its_parent_that_starts_it,
                a_parent_that_moved_opens_no_child,
                a_child_that_is_over_sets_its_waiting_parent_going,
                a_child_over_after_its_parent_moved_on_changes_nothing_of_it,
            }
            keys {
                a_run_key_is_taken_once,
                a_run_key_tells_a_repeated_request_from_another_and_an_expired_key_is_taken_over,
                a_run_key_starts_one_run_even_when_two_processes_use_it_at_once,
                a_run_opens_at_its_creators_time_and_its_key_is_judged_then,
            }
            lists {
                list_runs_filters_by_organization_graph_status_and_time_newest_first,
                runs_are_found_by_id_prefix_and_trigger_field,
                runs_of_the_same_millisecond_are_each_listed_once_through_the_cursor,
            }
            transcripts {
                transcripts_page_by_sequence_number_and_keep_their_entries,
                a_run_reads_back_as_it_stood_at_any_entry,
            }
            follow {
                following_from_the_middle_while_steps_commit_misses_and_repeats_nothing,
                a_follower_sees_commits_made_through_another_store,
                a_follower_in_one_process_replays_then_follows_another_processs_commits,
                a_follower_that_lags_behind_catches_up,
                following_an_unknown_or_finished_run,
            }
            leases {
                a_claimed_run_is_only_claimable_again_by_its_owner_until_its_lease_expires,
                a_claim_is_judged_at_the_callers_time,
                a_commit_is_judged_at_its_own_time,
                a_commit_is_refused_while_another_owner_holds_a_live_lease_and_parking_releases,
                a_cancel_without_a_lease_wins_and_releases,
                a_release_lets_another_owner_take_the_run_at_once,
                a_run_created_with_a_lease_is_held_by_its_creator_while_it_runs,
            }
            queue {
                runs_past_their_keys_limit_wait_their_turn_in_order,
                an_organizations_limit_holds_all_its_runs_with_their_keys,
                a_room_holds_its_parents_place_and_gives_it_back_to_its_parent,
            }
            retention {
                a_finished_run_is_deleted_with_everything_of_it_and_a_live_one_is_refused,
                finished_runs_past_their_retention_are_swept,
                a_graph_version_is_deleted_only_when_no_run_uses_it,
                a_sweep_keeps_runs_still_needed_and_goes_on_past_them,
            }
            hooks {
                a_commit_makes_a_delivery_for_each_hook_that_hears_each_of_its_events,
                deliveries_are_claimed_by_one_process_tried_again_and_ended,
            }
            workers {
                a_worker_id_is_held_by_one_live_process_until_released_or_expired,
                a_worker_registration_is_judged_at_the_callers_time,
                the_running_runs_an_owner_holds_are_listed_live_lease_or_not,
            }
        );
    };
    (@concerns $database:ident; $($concern:ident { $($test:ident),* $(,)? })*) => {
        $(
            mod $concern {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        let database = super::$database().await;
                        $crate::contract::$concern::$test(&database).await;
                    }
                )*
            }
        )*
    };
}
