//! `run` at a person's step on a real terminal: the binary runs in a tmux
//! pane, the test reads the pane and types the answers. It needs tmux
//! (`scripts/test` installs it when missing).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const REVIEW: &str = r#"{"id": "review", "name": "Review", "trigger": {"type": "manual"},
 "nodes": [
  {"id": "start", "type": "start"},
  {"id": "draft", "type": "function", "config": {"action": "json_transform", "template": {"title": "About {{trigger.topic}}"}}},
  {"id": "review", "type": "human", "config": {"prompt": "Publish \"{{draft.output.title}}\"?", "actions": ["approve", "reject"]}},
  {"id": "end", "type": "end"}],
 "edges": [{"source": "start", "target": "draft"}, {"source": "draft", "target": "review"}, {"source": "review", "target": "end"}]}"#;

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    /// Starts `shell_command` in a wide detached session.
    fn start(socket: String, shell_command: &str) -> Tmux {
        let tmux = Tmux { socket };
        let started = tmux.command(&["new-session", "-d", "-x", "200", "-y", "50", shell_command]);
        assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
        tmux
    }

    /// Types `text` and Enter.
    fn type_line(&self, text: &str) {
        assert!(self.command(&["send-keys", "-l", text]).status.success());
        assert!(self.command(&["send-keys", "Enter"]).status.success());
    }

    /// The pane's text once it contains `wanted` (waits up to 20 s).
    fn wait_for(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pane =
                String::from_utf8_lossy(&self.command(&["capture-pane", "-p", "-J"]).stdout).into_owned();
            if pane.contains(wanted) {
                return pane;
            }
            assert!(Instant::now() < deadline, "{wanted:?} never showed in the pane:\n{pane}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]);
    }
}

fn has_tmux() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|output| output.status.success())
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn run_asks_the_rendered_prompt_on_the_terminal_and_asks_again_after_a_refused_answer() {
    assert!(has_tmux(), "this test needs tmux: scripts/test installs it (apt-get install tmux)");
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("review.json");
    std::fs::write(&graph, REVIEW).unwrap();
    let command = format!(
        "{} --database {} run {} --input '{{\"topic\": \"rust\"}}'; echo \"exit status $?\"; sleep 60",
        shell_quote(Path::new(env!("CARGO_BIN_EXE_roomkit-graph"))),
        shell_quote(&dir.path().join("runs.db")),
        shell_quote(&graph),
    );
    let tmux = Tmux::start(format!("roomkit-graph-test-{}", std::process::id()), &command);

    tmux.wait_for("? Publish \"About rust\"? [approve / reject] > ");
    tmux.type_line("maybe");
    tmux.wait_for("type one of approve, reject (or a JSON object)");
    tmux.type_line(r#"{"action": "publish"}"#);
    tmux.wait_for("refused: action \"publish\" is not one of approve, reject");
    tmux.type_line("approve");
    let pane = tmux.wait_for("exit status");
    eprintln!("{}", pane.trim_end());
    assert!(pane.contains("terminal → review: {\"action\":\"approve\"}"), "{pane}");
    assert!(pane.contains("■ run completed"), "{pane}");
    assert!(pane.contains("exit status 0"), "{pane}");
    assert_eq!(pane.matches("? Publish \"About rust\"? [approve / reject] > ").count(), 3, "{pane}");
}
