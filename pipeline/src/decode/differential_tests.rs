//! The fast path against arrow-json on generated event chunks: records with nulls, missing
//! and unknown keys, escapes, odd numbers, and byte-level damage. Deterministic (seeded), so
//! a disagreement found here reproduces; `TRIBUTARY_DIFF_CHUNKS` runs more chunks.

use super::*;
use std::sync::Arc;
use tributary_connectors::Position;

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next(xs.len() as u64) as usize]
    }
}

fn decoder() -> NdjsonDecoder {
    let t = crate::schema::TableSchema::parse(
        std::path::Path::new("events.toml"),
        include_str!("../../../bench/schemas/events.toml"),
        "events",
    )
    .unwrap();
    let schema = t.record_schema();
    let required = required_fields(&schema);
    let nullable: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    NdjsonDecoder::new(
        Arc::new(arrow::datatypes::Schema::new(nullable)),
        &required,
        4096,
    )
}

/// A value for a string field: plain, escaped, null, or the wrong type.
fn string(r: &mut Rng) -> String {
    let good = [
        "\"DE\"",
        "\"mobile\"",
        "null",
        "\"\"",
        "\"a\\\"b\\\\c\\/d\"",
        "\"\\u00e9\\ud83d\\ude00\"",
        "\"\\u0000\"",
        "\"Köln\"",
        // U+2B600: arrow-json alone decodes this escape wrongly (`surrogates.rs`).
        "\"\\ud86d\\ude00\"",
    ];
    let odd = ["1", "true", "[]", "\"\\ud800\"", "\"\\udc00x\"", "{}"];
    one_of(r, &good, &odd)
}

/// Mostly well-typed values (so whole chunks take the fast path), sometimes odd ones.
fn one_of(r: &mut Rng, good: &[&str], odd: &[&str]) -> String {
    if r.next(15) == 0 {
        r.pick(odd).to_string()
    } else {
        r.pick(good).to_string()
    }
}

fn number(r: &mut Rng) -> String {
    let good = [
        "0",
        "-0",
        "1",
        "42",
        "-7",
        "1.5",
        "2.0",
        "1e2",
        "1E+2",
        "-1.25e-1",
        "12345678",
        "null",
        "0.1",
        "3.999",
        "5e-324",
        "1.7976931348623157e308",
    ];
    let odd = [
        "1e400",
        "9223372036854775807",
        "9223372036854775808",
        "\"12\"",
        "2147483648",
        "-2147483649",
        "01",
        "1.",
        "-",
        "1e",
        ".5",
    ];
    one_of(r, &good, &odd)
}

fn time(r: &mut Rng) -> String {
    let good = [
        "\"2024-06-03T17:04:11.512Z\"",
        "\"2024-06-03T17:04:11Z\"",
        "\"2024-06-03 10:00:00+02:00\"",
        "\"2024-06-03T10:00:00.123456789\"",
        "\"2024-06-03\"",
        "null",
    ];
    let odd = [
        "\"yesterday\"",
        "1717459199999",
        "\"+262143-01-01T00:00:00Z\"",
        "1.5",
    ];
    one_of(r, &good, &odd)
}

fn item(r: &mut Rng) -> String {
    if r.next(8) == 0 {
        return "null".into();
    }
    let mut kv = Vec::new();
    if r.next(6) > 0 {
        kv.push(format!("\"sku\":{}", string(r)));
    }
    if r.next(6) > 0 {
        kv.push(format!("\"qty\":{}", number(r)));
    }
    if r.next(6) > 0 {
        kv.push(format!("\"price\":{}", number(r)));
    }
    if r.next(10) == 0 {
        kv.push("\"x\":{\"y\":[1,null]}".into());
    }
    if r.next(8) == 0 && kv.len() > 1 {
        kv.swap(0, 1);
    }
    format!("{{{}}}", kv.join(","))
}

fn record(r: &mut Rng, i: usize) -> String {
    let mut kv: Vec<String> = Vec::new();
    let mut field = |r: &mut Rng, name: &str, v: String| {
        if r.next(40) > 0 {
            kv.push(format!("\"{name}\":{v}"));
        }
    };
    let id = if r.next(10) == 0 {
        string(r)
    } else {
        format!("\"e{i}\"")
    };
    field(r, "event_id", id);
    let t = time(r);
    field(r, "event_time", t);
    let n = number(r);
    field(r, "customer_id", n);
    let s = string(r);
    field(r, "country", s);
    let s = string(r);
    field(r, "device", s);
    let items = match r.next(6) {
        0 => "null".to_string(),
        1 => "[]".to_string(),
        2 if r.next(10) == 0 => "{}".to_string(),
        _ => {
            let n = 1 + r.next(3);
            let v: Vec<String> = (0..n).map(|_| item(r)).collect();
            format!("[{}]", v.join(","))
        }
    };
    field(r, "items", items);
    let n = number(r);
    field(r, "total_amount", n);
    let s = string(r);
    field(r, "status", s);
    let ship = match r.next(5) {
        0 => "null".to_string(),
        1 => "{}".to_string(),
        2 => format!("{{\"zip\":{}}}", string(r)),
        _ => format!("{{\"city\":{},\"zip\":{}}}", string(r), string(r)),
    };
    field(r, "shipping", ship);
    if r.next(25) == 0 {
        kv.push(
            r.pick(&["\"event_id\":\"dup\"", "\"extra\":[1,{\"a\":null}]"])
                .into(),
        );
    }
    if r.next(6) == 0 && kv.len() > 2 {
        let j = r.next(kv.len() as u64) as usize;
        kv.swap(0, j);
    }
    let sep = if r.next(8) == 0 { " , " } else { "," };
    format!("{{{}}}", kv.join(sep))
}

/// Byte-level damage, as a fuzzer would do.
fn damage(r: &mut Rng, line: &mut Vec<u8>) {
    const BYTES: &[u8] = b"{}[]\",:\\ nul0-.eE\t\r\x0c\x01ta";
    if line.is_empty() {
        return;
    }
    let at = r.next(line.len() as u64) as usize;
    let b = BYTES[r.next(BYTES.len() as u64) as usize];
    match r.next(3) {
        0 => line[at] = b,
        1 => {
            line.remove(at);
        }
        _ => line.insert(at, b),
    }
}

/// Decodes `data` with both decoders and checks they agree (batch, and bad records by
/// offset and kind); the fast decoder's answer.
fn same_answers(fast: &NdjsonDecoder, slow: &NdjsonDecoder, data: &[u8], what: &str) -> Decoded {
    let chunk = SourceBatch {
        records: data.to_vec(),
        start: Position {
            partition: "p".into(),
            offset: 0,
        },
        end: tributary_connectors::Offset::Bytes(data.len() as u64),
        ids: Vec::new(),
    };
    let a = fast.decode(&chunk, 0);
    let b = slow.decode(&chunk, 0);
    let text = String::from_utf8_lossy(data);
    assert_eq!(a.batch, b.batch, "{what}: batches differ on\n{text:?}");
    let bad =
        |d: &Decoded| -> Vec<(u64, &str)> { d.bad.iter().map(|x| (x.offset, x.kind)).collect() };
    assert_eq!(bad(&a), bad(&b), "{what}: bad records differ on\n{text:?}");
    a
}

#[test]
fn fast_path_answers_as_arrow_json_on_generated_chunks() {
    let fast = decoder();
    let slow = fast.clone().arrow_only();
    let chunks: usize = std::env::var("TRIBUTARY_DIFF_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut clean = 0;
    for c in 0..chunks {
        let mut data = Vec::new();
        for i in 0..1 + r.next(6) as usize {
            let mut line = record(&mut r, i).into_bytes();
            if r.next(25) == 0 {
                damage(&mut r, &mut line);
            }
            data.extend_from_slice(&line);
            data.extend_from_slice(match r.next(10) {
                0 => b"\r\n",
                1 => b"\n\n",
                _ => b"\n",
            });
        }
        let a = same_answers(&fast, &slow, &data, &format!("chunk {c}"));
        let good = a.batch.as_ref().map(|b| b.num_rows()).unwrap_or(0);
        assert_eq!(good + a.bad.len(), a.lines, "chunk {c}: a line was lost");
        if a.bad.is_empty() {
            clean += 1;
        }
    }
    // The generator must exercise the fast path, not only arrow-json's fallbacks.
    eprintln!("{clean} of {chunks} chunks clean");
    assert!(clean > chunks / 20, "only {clean} clean chunks");
}

/// The fuzz seeds (`fuzz/corpus/ndjson`) under random byte-level mutations, as libFuzzer
/// makes them: cheaper per input than the fuzz target, and seeded.
#[test]
fn fast_path_answers_as_arrow_json_on_mutated_seeds() {
    const SEEDS: [&[u8]; 2] = [
        include_bytes!("../../../fuzz/corpus/ndjson/events.ndjson"),
        include_bytes!("../../../fuzz/corpus/ndjson/fast-path.ndjson"),
    ];
    const TOKENS: [&[u8]; 16] = [
        b"null",
        b"\\u00",
        b"\\ud83d\\ude00",
        b"e+",
        b"-",
        b"\"",
        b":",
        b",",
        b"{}",
        b"[]",
        b"0",
        b"1.5",
        b"\n",
        b"\r",
        b"true",
        b"\\\"",
    ];
    let fast = decoder();
    let slow = fast.clone().arrow_only();
    let inputs: usize = std::env::var("TRIBUTARY_DIFF_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    for n in 0..inputs {
        let mut data = SEEDS[r.next(2) as usize].to_vec();
        // Keep a few lines: fewer lines make a disagreement easier to read.
        if r.next(2) == 0 {
            let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            let from = r.next(lines.len() as u64) as usize;
            let to = (from + 1 + r.next(4) as usize).min(lines.len());
            data = lines[from..to].join(&b'\n');
        }
        for _ in 0..1 + r.next(4) {
            if data.is_empty() {
                break;
            }
            let at = r.next(data.len() as u64) as usize;
            match r.next(6) {
                0 => data[at] = r.next(256) as u8,
                1 => data[at] ^= 1 << r.next(8),
                2 => {
                    let end = (at + 1 + r.next(8) as usize).min(data.len());
                    data.drain(at..end);
                }
                3 => {
                    let t = TOKENS[r.next(TOKENS.len() as u64) as usize];
                    data.splice(at..at, t.iter().copied());
                }
                4 => {
                    let end = (at + 1 + r.next(40) as usize).min(data.len());
                    let part = data[at..end].to_vec();
                    let to = r.next(data.len() as u64) as usize;
                    data.splice(to..to, part);
                }
                _ => {
                    // A digit or letter changed, as CMP mutations do.
                    data[at] = b"0123456789aeEnul"[r.next(16) as usize];
                }
            }
        }
        same_answers(&fast, &slow, &data, &format!("input {n}"));
    }
}
