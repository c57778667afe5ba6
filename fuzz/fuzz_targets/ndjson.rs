//! Any bytes as a chunk of NDJSON events: good rows and bad records, never a panic, and
//! every non-blank line accounted for.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tributary::decode::NdjsonDecoder;
use tributary_connectors::{Offset, Position, SourceBatch};

fn decoder() -> &'static NdjsonDecoder {
    static D: OnceLock<NdjsonDecoder> = OnceLock::new();
    D.get_or_init(|| {
        let t = tributary::schema::TableSchema::parse(
            std::path::Path::new("events.toml"),
            include_str!("../../bench/schemas/events.toml"),
            "events",
        )
        .unwrap();
        let schema = t.record_schema();
        let required = tributary::decode::required_fields(&schema);
        let nullable: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        NdjsonDecoder::new(
            std::sync::Arc::new(tributary::arrow::datatypes::Schema::new(nullable)),
            &required,
            4096,
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let chunk = SourceBatch {
        records: data.to_vec(),
        start: Position {
            partition: "fuzz".into(),
            offset: 0,
        },
        end: Offset::Bytes(data.len() as u64),
        ids: Vec::new(),
    };
    let d = decoder().decode(&chunk, 0);
    let good = d.batch.as_ref().map(|b| b.num_rows()).unwrap_or(0);
    assert_eq!(good + d.bad.len(), d.lines, "a line was lost");
});
