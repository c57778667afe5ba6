//! Athena/Trino query forms over a lake, each checked against an answer computed from the
//! input files with serde_json alone (or a known constant).

use std::collections::BTreeMap;

use tributary_tests::{TempProject, ndjson_files, valid_event};

/// The valid events of the generated files, as JSON values.
fn events(p: &TempProject) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in ndjson_files(&p.data_dir()) {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if valid_event(line).is_some() {
                out.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    out
}

async fn one(p: &TempProject, sql: &str) -> String {
    let rows = p.query_csv(sql).await;
    assert_eq!(rows.len(), 2, "{sql} → {rows:?}");
    rows[1].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_forms_give_the_expected_answers() {
    let p = TempProject::events("");
    p.gen_events(3000, 1, 0.02, 41);
    p.run().await;
    let ev = events(&p);
    let items: Vec<&serde_json::Value> = ev
        .iter()
        .filter_map(|e| e["items"].as_array())
        .flatten()
        .collect();

    // CROSS JOIN UNNEST(arr) AS t(x), struct fields of the element, and the comma form.
    assert_eq!(
        one(
            &p,
            "SELECT count(*) FROM events e CROSS JOIN UNNEST(e.items) AS t(item)"
        )
        .await,
        items.len().to_string()
    );
    let qty: i64 = items.iter().filter_map(|i| i["qty"].as_i64()).sum();
    assert_eq!(
        one(
            &p,
            "SELECT sum(t.item.qty) FROM events e CROSS JOIN UNNEST(e.items) AS t(item)"
        )
        .await,
        qty.to_string()
    );
    assert_eq!(
        one(
            &p,
            "SELECT count(*) FROM events, UNNEST(items) AS t(item) WHERE t.item.qty >= 2"
        )
        .await,
        items
            .iter()
            .filter(|i| i["qty"].as_i64().unwrap_or(0) >= 2)
            .count()
            .to_string()
    );
    // Trino's UNNEST: an array of rows spread into columns, WITH ORDINALITY, LEFT JOIN
    // keeping events without items, several arrays zipped.
    assert_eq!(
        one(
            &p,
            "SELECT sum(qty) FROM events e CROSS JOIN UNNEST(e.items) AS t(sku, qty, price)"
        )
        .await,
        qty.to_string()
    );
    let longest = ev
        .iter()
        .filter_map(|e| e["items"].as_array().map(|a| a.len()))
        .max()
        .unwrap_or(0);
    assert_eq!(
        one(
            &p,
            "SELECT count(*) || '/' || max(n) FROM events CROSS JOIN UNNEST(items) WITH ORDINALITY AS t(item, n)"
        )
        .await,
        format!("{}/{longest}", items.len())
    );
    let without = ev
        .iter()
        .filter(|e| e["items"].as_array().is_none_or(|a| a.is_empty()))
        .count();
    assert_eq!(
        one(
            &p,
            "SELECT count(*) FROM events LEFT JOIN UNNEST(items) AS t(item) ON true"
        )
        .await,
        (items.len() + without).to_string()
    );
    assert_eq!(
        one(
            &p,
            "SELECT count(*) FROM events CROSS JOIN UNNEST(items, items) AS t(a, b) WHERE a.sku = b.sku"
        )
        .await,
        items.len().to_string()
    );
    // Element access followed by a field.
    let firsts: i64 = ev
        .iter()
        .filter_map(|e| e["items"].as_array().and_then(|a| a.first()))
        .filter_map(|i| i["qty"].as_i64())
        .sum();
    assert_eq!(
        one(
            &p,
            "SELECT sum(items[1].qty) FROM events WHERE cardinality(items) > 0"
        )
        .await,
        firsts.to_string()
    );
    // Trino's aggregates.
    let amounts: Vec<(String, f64)> = ev
        .iter()
        .filter_map(|e| {
            Some((
                e["event_id"].as_str()?.to_string(),
                e["total_amount"].as_f64()?,
            ))
        })
        .collect();
    let big = amounts.iter().filter(|(_, a)| *a > 100.0).count();
    assert_eq!(
        one(&p, "SELECT count_if(total_amount > 100) FROM events").await,
        big.to_string()
    );
    let (top, _) = amounts.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(
        one(&p, "SELECT max_by(event_id, total_amount) FROM events").await,
        *top
    );
    let de = ev.iter().filter(|e| e["country"] == "DE").count();
    assert_eq!(
        one(
            &p,
            "SELECT element_at(histogram(country), 'DE') FROM events"
        )
        .await,
        de.to_string()
    );
    let mut countries: Vec<&str> = ev.iter().filter_map(|e| e["country"].as_str()).collect();
    countries.sort();
    countries.dedup();
    assert_eq!(
        one(
            &p,
            "SELECT listagg(country, ',') WITHIN GROUP (ORDER BY country) \
             FROM (SELECT DISTINCT country FROM events WHERE country IS NOT NULL)"
        )
        .await,
        format!("\"{}\"", countries.join(","))
    );
    // cardinality, element_at on arrays (1-based, negative from the end, NULL past the end).
    assert_eq!(
        one(&p, "SELECT sum(cardinality(items)) FROM events").await,
        items.len().to_string()
    );
    let first = ev
        .iter()
        .find(|e| e["items"].as_array().map(|a| a.len() >= 2).unwrap_or(false))
        .unwrap();
    let id = first["event_id"].as_str().unwrap();
    let arr = first["items"].as_array().unwrap();
    assert_eq!(
        one(&p, &format!("SELECT element_at(items, 1).sku || '/' || element_at(items, -1).sku FROM events WHERE event_id = '{id}'")).await,
        format!("{}/{}", arr[0]["sku"].as_str().unwrap(), arr[arr.len() - 1]["sku"].as_str().unwrap())
    );
    assert_eq!(
        one(
            &p,
            &format!("SELECT element_at(items, 99) IS NULL FROM events WHERE event_id = '{id}'")
        )
        .await,
        "true"
    );
    assert_eq!(
        one(&p, "SELECT element_at(MAP {'a': 1, 'b': 2}, 'b')").await,
        "2"
    );
    // regexp_like.
    let de = ev
        .iter()
        .filter(|e| {
            e["country"]
                .as_str()
                .map(|c| c.starts_with('D'))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(
        one(
            &p,
            "SELECT count(*) FROM events WHERE regexp_like(country, '^D')"
        )
        .await,
        de.to_string()
    );
    // date_trunc per day = the independent per-day counts.
    let mut days: BTreeMap<String, u64> = BTreeMap::new();
    for e in &ev {
        let t = chrono::DateTime::parse_from_rfc3339(e["event_time"].as_str().unwrap()).unwrap();
        *days
            .entry(t.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string())
            .or_default() += 1;
    }
    let rows = p
        .query_csv("SELECT date_format(date_trunc('day', event_time), '%Y-%m-%d') AS d, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
        .await;
    let got: Vec<String> = rows[1..].to_vec();
    let want: Vec<String> = days.iter().map(|(d, n)| format!("{d},{n}")).collect();
    assert_eq!(got, want);
    // Time functions with known answers.
    assert_eq!(
        one(
            &p,
            "SELECT date_parse('2024-06-03 10:15:07', '%Y-%m-%d %H:%i:%s')"
        )
        .await,
        "2024-06-03T10:15:07"
    );
    assert_eq!(
        one(
            &p,
            "SELECT from_iso8601_timestamp('2024-06-03T10:15:07.250+02:00')"
        )
        .await,
        "2024-06-03T08:15:07.250Z"
    );
    assert_eq!(
        one(
            &p,
            "SELECT date_add('month', 1, date_parse('2024-01-31', '%Y-%m-%d'))"
        )
        .await,
        "2024-02-29T00:00:00"
    );
    assert_eq!(
        one(
            &p,
            "SELECT date_add('day', -1, from_iso8601_timestamp('2024-03-01T00:00:00Z'))"
        )
        .await,
        "2024-02-29T00:00:00Z"
    );
    assert_eq!(
        one(&p, "SELECT date_diff('day', from_iso8601_timestamp('2024-06-01T00:00:00Z'), from_iso8601_timestamp('2024-06-03T12:00:00Z'))").await,
        "2"
    );
    assert_eq!(
        one(
            &p,
            "SELECT date_diff('hour', min(event_time), max(event_time)) >= 0 FROM events"
        )
        .await,
        "true"
    );
    // approx_percentile: close to the exact median.
    let mut amounts: Vec<f64> = ev
        .iter()
        .map(|e| e["total_amount"].as_f64().unwrap())
        .collect();
    amounts.sort_by(f64::total_cmp);
    let median = amounts[amounts.len() / 2];
    let approx: f64 = one(
        &p,
        "SELECT approx_percentile(total_amount, 0.5) FROM events",
    )
    .await
    .parse()
    .unwrap();
    assert!(
        (approx - median).abs() <= 0.05 * median.abs().max(1.0),
        "approx {approx} vs exact {median}"
    );
}
