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
        .stderr(Stdio::inherit())
        .spawn()
        .expect("`script` (util-linux) runs the prompt on a pty");
    let mut stdin = child.stdin.take().unwrap();
    // The terminal's output, read as it comes: each line is typed once its prompt shows
    // (however long the prompt takes to start on a busy machine).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = |prompt: &str| {
        String::from_utf8_lossy(&seen.lock().unwrap())
            .matches(prompt)
            .count()
    };
    for (line, prompt, times) in [
        ("SELECT 40 + 2", "sql> ", 1),
        ("  AS answer;", "...> ", 1),
        ("\\q", "sql> ", 2),
    ] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while shown(prompt) < times {
            assert!(
                std::time::Instant::now() < deadline,
                "no prompt {prompt:?}: {}",
                String::from_utf8_lossy(&seen.lock().unwrap())
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(status.success(), "{text}");
    assert!(text.contains("answer") && text.contains("42"), "{text}");
    assert!(text.contains("Time:"), "timing is on at a terminal: {text}");
    let history = std::fs::read_to_string(home.path().join(".tributary_history")).unwrap();
    assert!(history.contains("AS answer;"), "{history}");
}
