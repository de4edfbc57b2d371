//! Runs every case of the shared conformance suite and compares the records
//! with the expected ones using the suite's own `compare.py`.

use std::path::PathBuf;
use std::process::Command;

fn conformance_dir() -> PathBuf {
    std::env::var_os("ROOMKIT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"))
}

/// Runs the cases of `set` (under the suite's folder) and compares their records.
async fn check(set: &std::path::Path) {
    assert!(set.join("cases").is_dir(), "no conformance cases at {}", set.display());
    let out = tempfile::tempdir().expect("a temporary folder");
    let names =
        roomkit_graph_conformance::run_dir(&set.join("cases"), out.path()).await.expect("the cases run");
    assert!(!names.is_empty());

    let compare = Command::new("python3")
        .arg(conformance_dir().join("compare.py"))
        .arg(set.join("expected"))
        .arg(out.path())
        .output()
        .expect("python3 runs compare.py");
    let report = String::from_utf8_lossy(&compare.stdout);
    assert!(compare.status.success(), "conformance differences in {}:\n{report}", set.display());
    assert!(report.contains(&format!("{} passed, 0 failed", names.len())), "{report}");
}

#[tokio::test]
async fn every_shared_case_matches_its_expected_records() {
    check(&conformance_dir()).await;
}

/// The cases of behaviour being built (`next/`): parallel children that
/// wait, error routes, `input` coming from start.
#[tokio::test]
async fn every_next_case_matches_its_expected_records() {
    check(&conformance_dir().join("next")).await;
}
