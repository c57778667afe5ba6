//! `tributary sql` fed statements on stdin (as a script or a pipe): multi-line statements,
//! `\d` describes, formats, and the first error stopping it with exit code 1.

use std::io::Write;
use std::process::{Command, Stdio};

use tributary_tests::{TempProject, tributary_bin};

fn sql(p: &TempProject, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(tributary_bin())
        .current_dir(p.path())
        .arg("sql")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_from_stdin() {
    let p = TempProject::events("");
    p.gen_events(1000, 1, 0.0, 61);
    p.run().await;
    let (code, out, err) = sql(
        &p,
        &["--format", "csv"],
        "SELECT count(*) AS n\n  FROM events\n  WHERE customer_id > 0;\n\\d\n\\d events\nSELECT ';' AS s;\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("n\n1000\n"), "{out}");
    assert!(out.contains(",events,"), "\\d lists tables: {out}");
    assert!(out.contains("event_id,"), "\\d events describes: {out}");
    assert!(out.ends_with("s\n;\n"), "{out}");

    let (code, out, err) = sql(
        &p,
        &[],
        "SELECT 1 AS one;\nSELECT * FROM nope;\nSELECT 2;\n",
    );
    assert_eq!(code, 1);
    assert!(out.contains("one"), "{out}");
    assert!(err.contains("table `nope` not found"), "{err}");
    assert!(!out.contains("| 2"), "stops at the first error: {out}");
}

/// The interactive prompt on a real terminal (a pty from `script`): a multi-line statement,
/// its answer and timing, and the history file written on `\q`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_prompt_on_a_terminal() {
    let p = TempProject::events("");
    p.gen_events(200, 1, 0.0, 62);
    p.run().await;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args(["-qec"])
        .arg(format!("{} sql", tributary_bin().display()))
        .arg("/dev/null")
        .current_dir(p.path())
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the prompt on a pty");
    let mut stdin = child.stdin.take().unwrap();
    for line in ["SELECT 40 + 2", "  AS answer;", "\\q"] {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("answer") && text.contains("42"), "{text}");
    assert!(text.contains("Time:"), "timing is on at a terminal: {text}");
    let history = std::fs::read_to_string(home.path().join(".tributary_history")).unwrap();
    assert!(history.contains("AS answer;"), "{history}");
}
