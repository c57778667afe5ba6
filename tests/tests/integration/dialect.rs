//! The SQL dialect at every front door: Trino's by default, DataFusion's on request
//! (`query --dialect`, the API's `dialect`, Flight SQL's `x-tributary-dialect` header,
//! `[query] dialect`), and an unknown dialect refused.

use serde_json::json;
use tributary_tests::serve::{call, python_driver, serve, wait};
use tributary_tests::{TempProject, cli, output_text};

/// `0.1 + 0.2 = 0.3` is true in Trino (decimal literals) and false in DataFusion (doubles).
const EXACT: &str = "SELECT 0.1 + 0.2 = 0.3 AS exact";

#[test]
fn the_cli_reads_trino_unless_asked_for_datafusion() {
    let p = TempProject::events("");
    let answer = |args: &[&str]| {
        let mut all = vec!["query", "--format", "csv", EXACT];
        all.extend_from_slice(args);
        let o = cli(&p, &all);
        assert!(o.status.success(), "{}", output_text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(answer(&[]), "true");
    assert_eq!(answer(&["--dialect", "trino"]), "true");
    assert_eq!(answer(&["--dialect", "datafusion"]), "false");
    // NULLS LAST for DESC too, in Trino; DataFusion puts NULLs first for DESC.
    let order = "SELECT coalesce(CAST(x AS VARCHAR), 'null') AS y \
                 FROM (VALUES (1), (NULL), (2)) t(x) ORDER BY x DESC";
    let o = cli(&p, &["query", "--format", "csv", order]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "y\n2\n1\nnull\n");
    let o = cli(
        &p,
        &["query", "--format", "csv", "--dialect", "datafusion", order],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "y\nnull\n2\n1\n");
    let o = cli(&p, &["query", "--dialect", "mysql", EXACT]);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("expected one of trino, datafusion"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn the_project_setting_is_the_default_and_a_bad_one_is_refused_with_its_place() {
    let p = TempProject::events("");
    let config = std::fs::read_to_string(p.config_path()).unwrap();
    std::fs::write(
        p.config_path(),
        format!("{config}\n[query]\ndialect = \"datafusion\"\n"),
    )
    .unwrap();
    let o = cli(&p, &["query", "--format", "csv", EXACT]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().nth(1),
        Some("false"),
        "{}",
        output_text(&o)
    );
    std::fs::write(
        p.config_path(),
        format!("{config}\n[query]\ndialect = \"presto\"\n"),
    )
    .unwrap();
    let o = cli(&p, &["validate"]);
    assert!(!o.status.success());
    let text = output_text(&o);
    assert!(
        text.contains("tributary.toml:") && text.contains("presto"),
        "{text}"
    );
}

#[test]
fn the_api_and_flight_sql_take_a_dialect_per_query() {
    let p = TempProject::events("");
    let s = serve(&p);
    let run = |dialect: Option<&str>| {
        let mut body = json!({ "sql": EXACT });
        if let Some(d) = dialect {
            body["dialect"] = json!(d);
        }
        let (st, v) = call(&s, "POST", "/v1/queries", Some(body));
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["dialect"], dialect.unwrap_or("trino"));
        let id = v["query_id"].as_str().unwrap().to_string();
        assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
        let (st, page) = call(&s, "GET", &format!("/v1/queries/{id}/results"), None);
        assert_eq!(st, 200, "{page}");
        page["rows"][0]["exact"].clone()
    };
    assert_eq!(run(None), json!(true));
    assert_eq!(run(Some("datafusion")), json!(false));
    assert_eq!(run(Some("trino")), json!(true));
    let (st, v) = call(
        &s,
        "POST",
        "/v1/queries",
        Some(json!({ "sql": EXACT, "dialect": "mysql" })),
    );
    assert_eq!(st, 400, "{v}");

    let flight = python_driver(&s, "dialect_flight.py");
    assert_eq!(flight["trino"], json!(true), "{flight}");
    assert_eq!(flight["datafusion"], json!(false), "{flight}");
    assert!(
        flight["bad"]
            .as_str()
            .unwrap_or("")
            .contains("unknown SQL dialect"),
        "{flight}"
    );
}
