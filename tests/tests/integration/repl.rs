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
