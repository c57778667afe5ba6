//! Schema evolution: a new nullable field evolves the table on the next run (old files read
//! it as null); incompatible changes are refused by `validate` (file:line:col in the schema
//! file, a suggested migration) and by `run` before any data moves.

use tributary_tests::{EVENTS_SCHEMA, TempProject, cli, output_text as text};

fn set_schema(p: &TempProject, schema: &str) {
    std::fs::write(p.path().join("schemas/events.toml"), schema).unwrap();
}

/// `file:line:col` of `name = "<column>"`'s value in a schema text.
fn at(schema: &str, column: &str) -> String {
    let needle = format!("name = \"{column}\"");
    let line = schema.lines().position(|l| l.contains(&needle)).unwrap() + 1;
    format!("events.toml:{line}:8: error:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_nullable_field_evolves_the_table_and_incompatible_changes_are_refused() {
    let p = TempProject::events("");
    p.gen_events(1000, 1, 0.0, 71);
    assert!(cli(&p, &["run"]).status.success());

    // A new nullable field, and new data that has it.
    let evolved = format!("{EVENTS_SCHEMA}\n[[fields]]\nname = \"coupon\"\ntype = \"string\"\n");
    set_schema(&p, &evolved);
    let o = cli(&p, &["validate"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("gains nullable columns [coupon]"),
        "{}",
        text(&o)
    );
    let line = "{\"event_id\":\"c1\",\"event_time\":\"2024-06-02T10:00:00Z\",\"customer_id\":1,\"total_amount\":3.5,\"coupon\":\"SPRING\"}\n";
    std::fs::write(p.data_dir().join("later.ndjson"), line).unwrap();
    let o = cli(&p, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        p.count("SELECT count(*) FROM events WHERE coupon IS NULL")
            .await,
        1000
    );
    assert_eq!(
        p.query_csv("SELECT coupon FROM events WHERE event_id = 'c1'")
            .await[1],
        "SPRING"
    );
    let version = p
        .lake()
        .await
        .load("events")
        .await
        .unwrap()
        .unwrap()
        .version();

    // Incompatible changes: validate names the field, the change and a migration.
    let cases = [
        (
            evolved.replacen("type = \"int64\"", "type = \"int32\"", 1),
            "customer_id",
            "a narrowing",
        ),
        (
            evolved.replace("name = \"country\"", "name = \"country_code\""),
            "country_code",
            "a rename",
        ),
        (
            evolved.replacen(
                "[[fields]]\nname = \"event_id\"\ntype = \"string\"\nrequired = true\n",
                "",
                1,
            ),
            "",
            "required column `event_id` of table `events` is missing",
        ),
        (
            format!(
                "{evolved}\n[[fields]]\nname = \"region\"\ntype = \"string\"\nrequired = true\n"
            ),
            "region",
            "new column `region` is required",
        ),
    ];
    for (schema, column, what) in &cases {
        set_schema(&p, schema);
        let o = cli(&p, &["validate"]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains(what), "{t}");
        assert!(t.contains("hint: migration:"), "{t}");
        if !column.is_empty() {
            assert!(t.contains(&at(schema, column)), "{what}: {t}");
        }
        // `run` refuses too, before anything is written.
        let o = cli(&p, &["run"]);
        assert!(!o.status.success(), "{what}");
        assert!(text(&o).contains(what), "{}", text(&o));
        assert_eq!(
            p.lake()
                .await
                .load("events")
                .await
                .unwrap()
                .unwrap()
                .version(),
            version
        );
    }
}
