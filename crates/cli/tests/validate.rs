//! `roomkit-graph validate` as people and scripts use it: the real binary on
//! real files.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roomkit-graph/tests/fixtures").join(name)
}

fn validate(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
        .arg("validate")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_file_with_many_mistakes_gets_them_all_with_nodes_and_fields_and_exit_1() {
    let output = validate(&[fixture("many-mistakes.json").as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    for line in [
        "10 mistakes",
        "dangling_edge_target node=notify:",
        "unknown_function_action node=fetch field=action:",
        "invalid_duration node=wait field=duration:",
        "malformed_template node=greet field=template.text:",
        "malformed_condition node=check field=edges[4].condition:",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn valid_files_exit_0_and_unreadable_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let valid = dir.path().join("valid.json");
    std::fs::write(
        &valid,
        r#"{"id": "g", "name": "G", "trigger": {"type": "manual"},
            "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
            "edges": [{"source": "start", "target": "end"}]}"#,
    )
    .unwrap();
    let output = validate(&[valid.as_os_str()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("valid.json: ok\n"));

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"id\": \"g\",\n \"nodes\": [}").unwrap();
    let missing = dir.path().join("missing.json");
    let output = validate(&[valid.as_os_str(), broken.as_os_str(), missing.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("broken.json: not a graph: invalid graph JSON") && text.contains("line 2"),
        "{text}"
    );
    assert!(text.contains("missing.json: not a graph: cannot read the file"), "{text}");
}

#[test]
fn json_output_lists_every_error_for_scripts() {
    let output = validate(&["--json".as_ref(), fixture("unreachable-and-config.json").as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["valid"], false);
    let errors = &report["files"][0]["errors"];
    assert_eq!(errors[0]["code"], "unreachable");
    assert_eq!(errors[0]["node"], "island");
    assert_eq!(errors[1]["code"], "invalid_join");
    assert_eq!(errors[1]["field"], "join");
}

#[test]
fn no_file_is_a_usage_error() {
    let output = validate(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FILES"));
}
