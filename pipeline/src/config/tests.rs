use super::*;

const SCHEMA: &str = r#"
name = "orders"
[[fields]]
name = "event_id"
type = "string"
required = true
[[fields]]
name = "status"
type = "string"
[[fields]]
name = "total_amount"
type = "float64"
[[fields]]
name = "band"
type = "string"
"#;

/// Validates `config` in a temp project; returns the rendered errors (empty if valid).
async fn check(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
    std::fs::write(dir.path().join("schemas/orders.toml"), SCHEMA).unwrap();
    let path = dir.path().join("tributary.toml");
    std::fs::write(&path, config).unwrap();
    match Config::load(&path, None).await {
        Ok(_) => String::new(),
        Err(d) => d.to_string(),
    }
}

const BASE: &str = r#"[pipelines.orders]
table = "orders"
source = { type = "file", path = "data/*.ndjson" }
"#;

#[tokio::test]
async fn a_valid_config_passes() {
    let cfg = format!(
        "{BASE}[[pipelines.orders.transforms]]\ntype = \"filter\"\npredicate = \"status <> 'created'\"\n\
         [[pipelines.orders.transforms]]\ntype = \"derive\"\ncolumn = \"band\"\nexpr = \"CASE WHEN total_amount > 100 THEN 'high' ELSE 'low' END\"\n"
    );
    assert_eq!(check(&cfg).await, "");
}

#[tokio::test]
async fn unknown_keys_and_wrong_types_have_line_and_column() {
    let e = check(&format!("{BASE}batch_sise = 10\n")).await;
    assert!(
        e.contains("tributary.toml:4:1") && e.contains("unknown field `batch_sise`"),
        "{e}"
    );
    let e = check(&format!("{BASE}batch_size = \"ten\"\n")).await;
    assert!(
        e.contains("tributary.toml:4:14") && e.contains("invalid type"),
        "{e}"
    );
    let e = check(&format!("{BASE}on_bad_record = \"retry\"\n")).await;
    assert!(
        e.contains("tributary.toml:4:17") && e.contains("hint: use \"dlq\""),
        "{e}"
    );
}

#[tokio::test]
async fn unknown_table_and_source_are_named() {
    let e = check(&BASE.replace("table = \"orders\"", "table = \"ordrs\"")).await;
    assert!(
        e.contains("tributary.toml:2:9") && e.contains("did you mean `orders`"),
        "{e}"
    );
    let e = check(&BASE.replace("type = \"file\"", "type = \"fiel\"")).await;
    assert!(
        e.contains("tributary.toml:3:19") && e.contains("did you mean `file`"),
        "{e}"
    );
}

#[tokio::test]
async fn unknown_column_in_a_predicate_points_at_the_name() {
    let cfg = format!(
        "{BASE}[[pipelines.orders.transforms]]\ntype = \"filter\"\npredicate = \"stauts <> 'created'\"\n"
    );
    let e = check(&cfg).await;
    assert!(e.contains("tributary.toml:6:14"), "{e}");
    assert!(
        e.contains("unknown column `stauts`") && e.contains("did you mean `status`"),
        "{e}"
    );
}

#[tokio::test]
async fn output_that_does_not_fit_the_table_is_refused() {
    let cfg = format!(
        "{BASE}[[pipelines.orders.transforms]]\ntype = \"derive\"\ncolumn = \"extra\"\nexpr = \"1\"\n"
    );
    let e = check(&cfg).await;
    assert!(
        e.contains("column `extra`") && e.contains("has no such field"),
        "{e}"
    );
    assert!(e.contains("tributary.toml:4:1"), "{e}");
    let cfg = format!(
        "{BASE}[[pipelines.orders.transforms]]\ntype = \"select\"\ncolumns = [\"status\"]\n"
    );
    let e = check(&cfg).await;
    assert!(e.contains("required field `event_id`"), "{e}");
}

#[tokio::test]
async fn transform_settings_are_checked_per_type() {
    let cfg = format!("{BASE}[[pipelines.orders.transforms]]\ntype = \"filter\"\nexpr = \"x\"\n");
    let e = check(&cfg).await;
    assert!(
        e.contains("tributary.toml:6:8") && e.contains("`expr` is not a setting of a `filter`"),
        "{e}"
    );
    let cfg = format!("{BASE}[[pipelines.orders.transforms]]\ntype = \"flter\"\n");
    let e = check(&cfg).await;
    assert!(e.contains("did you mean `filter`"), "{e}");
    let cfg = format!(
        "{BASE}[[pipelines.orders.transforms]]\ntype = \"hash\"\ncolumns = [\"event_id\"]\nsalt = \"${{env:TRIBUTARY_TEST_UNSET_SALT}}\"\n"
    );
    let e = check(&cfg).await;
    assert!(e.contains("TRIBUTARY_TEST_UNSET_SALT` is not set"), "{e}");
    let cfg = format!(
        "{BASE}[[pipelines.orders.transforms]]\ntype = \"sql\"\nquery = \"SELECT status, count(*) AS n FROM input GROUP BY status\"\n"
    );
    let e = check(&cfg).await;
    assert!(e.contains("row-wise"), "{e}");
}

#[tokio::test]
async fn several_errors_are_reported_together() {
    let cfg = "[pipelines.a]\ntable = \"nope\"\nsource = { type = \"file\", path = \"x\" }\n\
               [pipelines.b]\ntable = \"orders\"\non_bad_record = \"x\"\nsource = { type = \"file\", path = \"x\" }\n";
    let e = check(cfg).await;
    assert!(e.contains("2 errors"), "{e}");
}
