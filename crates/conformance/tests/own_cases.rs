//! Runs the project's own conformance cases (`cases/`, with the records the
//! reference implementation wrote for them in `expected/`) and compares the
//! records with the shared suite's `compare.py`.

use std::path::PathBuf;
use std::process::Command;

fn shared_compare() -> PathBuf {
    std::env::var_os("ROOMKIT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"))
        .join("compare.py")
}

#[tokio::test]
async fn every_own_case_matches_the_reference_s_records() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let names = roomkit_graph_conformance::run_dir(&dir.join("cases"), out.path()).await.unwrap();
    let expected = std::fs::read_dir(dir.join("expected")).unwrap().count();
    assert_eq!(names.len(), expected, "every case has its expected records");

    let compare = Command::new("python3")
        .arg(shared_compare())
        .arg(dir.join("expected"))
        .arg(out.path())
        .output()
        .expect("python3 runs compare.py");
    let report = String::from_utf8_lossy(&compare.stdout);
    assert!(compare.status.success(), "conformance differences:\n{report}");
    assert!(report.contains(&format!("{} passed, 0 failed", names.len())), "{report}");
}
