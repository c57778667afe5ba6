//! Results hold only their own bytes: string-heavy LIMIT, filter and top-K answers cut from a
//! large table go over Flight SQL (the real ADBC driver) within gRPC's 16 MB message limit,
//! and an HTTP Arrow page carries its rows, not the buffers they were sliced from.

use tributary_tests::TempProject;
use tributary_tests::http::request;
use tributary_tests::serve::{TOKEN, python_driver, serve, start, wait};

const DOCS_SCHEMA: &str = "name = \"docs\"\n[[fields]]\nname = \"id\"\ntype = \"string\"\nrequired = true\n[[fields]]\nname = \"n\"\ntype = \"int64\"\nrequired = true\n[[fields]]\nname = \"body\"\ntype = \"string\"\n";

/// Rows of ~500 bytes each: ~30 MB of strings, so that the buffers a few hundred rows
/// point into weigh more than gRPC's 16 MB default.
const ROWS: usize = 60_000;
const BODY: usize = 480;

fn body(i: usize) -> String {
    let word = format!("{i:08x}");
    word.repeat(BODY / word.len())
}

fn project() -> TempProject {
    let p = TempProject::new(
        "[project]\nlake = \"lake\"\n\n[pipelines.docs]\ntable = \"docs\"\nsource = { type = \"file\", path = \"data/*.ndjson\" }\n",
        &[("docs", DOCS_SCHEMA)],
    );
    std::fs::create_dir_all(p.data_dir()).unwrap();
    let mut text = String::with_capacity(ROWS * (BODY + 40));
    for i in 0..ROWS {
        // Ids not in file order: top-K keeps rows from every batch of the scan.
        let id = format!("doc-{:06}", (i * 7919) % ROWS);
        text.push_str(&format!(
            "{{\"id\":\"{id}\",\"n\":{i},\"body\":\"{}\"}}\n",
            body(i)
        ));
    }
    std::fs::write(p.data_dir().join("docs.ndjson"), text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_heavy_results_fit_grpc_messages_and_pages() {
    let p = project();
    assert_eq!(p.run().await[0].records_written, ROWS as u64);
    let s = serve(&p);
    let v = python_driver(&s, "adbc_wide_strings.py");
    let rows = |q: &str| {
        assert!(v[q]["error"].is_null(), "{q}: {}", v[q]["error"]);
        v[q]["rows"].as_u64().unwrap()
    };
    assert_eq!(rows("top_k"), 500);
    assert_eq!(v["top_k"]["distinct"], 500);
    assert_eq!(v["top_k"]["first"], "doc-000000");
    assert_eq!(v["top_k"]["body_bytes"], 500 * BODY as u64);
    assert_eq!(rows("limit"), 500);
    assert_eq!(rows("filter"), ROWS.div_ceil(97) as u64);
    assert_eq!(rows("top_k_desc"), 300);
    // The whole table (~30 MB) arrives too, in messages under the limit.
    assert_eq!(rows("all"), ROWS as u64);
    assert_eq!(v["all"]["distinct"], ROWS);

    // An HTTP Arrow page of 100 rows carries ~100 rows' bytes, not the result's buffers.
    let id = start(&s, "SELECT id, body FROM docs ORDER BY id LIMIT 500");
    assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
    let r = request(
        &s.addr,
        "GET",
        &format!("/v1/queries/{id}/results?format=arrow&max_results=100"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.len() < 200 * BODY,
        "a 100-row page took {} bytes",
        r.body.len()
    );
}
