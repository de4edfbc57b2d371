//! `sqlite-commit COMMITS DIR`: the ceiling for one run committing each step
//! alone. A bare rusqlite connection on a fresh file in DIR, in WAL mode with
//! `synchronous=FULL` (as the store opens its file), makes COMMITS
//! transactions, each inserting one small row (a ~200-byte JSON transcript
//! entry) and committing: one WAL fsync per commit. Prints
//! `engine=sqlite-wal-fsync workload=sqlite-commit n=COMMITS commits_per_s=X`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::json;

use crate::remove_database;

/// The bare database's file in DIR.
const DATABASE: &str = "sqlite-commit.sqlite";

/// Runs the workload; see the module docs.
pub(crate) fn run(commits: usize, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(DATABASE);
    remove_database(&path)?;
    let mut conn = Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "cannot switch {} to WAL (journal mode {mode})",
        path.display()
    );
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE steps (
            run_id     TEXT    NOT NULL,
            seq        INTEGER NOT NULL,
            entry_json TEXT    NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;",
    )?;

    let started = Instant::now();
    for seq in 0..commits {
        // A node_completed entry of the chain, about 200 bytes of JSON.
        let entry = json!({
            "type": "node_completed",
            "node_id": format!("n{seq}"),
            "node_type": "function",
            "output": {"i": seq, "prev": seq as i64 - 1, "msg": format!("step {} of bench", seq as i64 - 1)},
            "at": 1_700_000_000_000_u64 + seq as u64,
            "attempt": 1,
            "run_id": "0b5c3a9e-2f4d-4c1b-9a7e-6d8f1e2c3b4a",
        });
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO steps (run_id, seq, entry_json) VALUES (?1, ?2, ?3)")?
            .execute(params!["0b5c3a9e-2f4d-4c1b-9a7e-6d8f1e2c3b4a", seq as i64, entry.to_string()])?;
        tx.commit()?;
    }
    let elapsed = started.elapsed();

    let rows: i64 = conn.query_row("SELECT count(*) FROM steps", [], |row| row.get(0))?;
    ensure!(usize::try_from(rows).ok() == Some(commits), "{rows} rows committed, expected {commits}");
    let commits_per_s = commits as f64 / elapsed.as_secs_f64();
    println!("engine=sqlite-wal-fsync workload=sqlite-commit n={commits} commits_per_s={commits_per_s:.0}");
    Ok(())
}
