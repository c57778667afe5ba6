//! Any bytes as a chunk of NDJSON events: good rows and bad records, never a panic, every
//! non-blank line accounted for — and the one-pass fast path answers exactly as arrow-json.
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

fn arrow_only() -> &'static NdjsonDecoder {
    static D: OnceLock<NdjsonDecoder> = OnceLock::new();
    D.get_or_init(|| decoder().clone().arrow_only())
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
    let a = arrow_only().decode(&chunk, 0);
    // The input goes into the message: a CI clone's artifacts can be gone by the time
    // anyone looks.
    assert_eq!(
        d.batch,
        a.batch,
        "the fast path and arrow-json disagree on {:?}",
        String::from_utf8_lossy(data)
    );
    let bad = |x: &tributary::decode::Decoded| -> Vec<(u64, &str)> {
        x.bad.iter().map(|b| (b.offset, b.kind)).collect()
    };
    assert_eq!(
        bad(&d),
        bad(&a),
        "the fast path and arrow-json disagree on bad records in {:?}",
        String::from_utf8_lossy(data)
    );
});
