//! NDJSON bytes → Arrow `RecordBatch` with the declared schema. Bad records are split off
//! one by one — never the whole batch: invalid JSON, wrong types, missing required fields,
//! over-size lines each become a [`BadRecord`] with its source position and a reason.
//!
//! The fast path decodes the whole chunk in one go: the one-pass decoder (`fast`) first,
//! else arrow-json's vectorised decoder. Only when both fail does the decoder bisect the
//! chunk to isolate the bad lines, so clean input pays nothing for the safety.

use std::ops::Range;

use arrow::array::{Array, BooleanArray};
use arrow::compute::{concat_batches, filter_record_batch, not, or};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_json::ReaderBuilder;
use tributary_connectors::SourceBatch;

#[cfg(test)]
mod differential_tests;
mod fast;
mod surrogates;
use fast::FastDecoder;

/// A record that did not make it into the table, and why.
#[derive(Debug, Clone)]
pub struct BadRecord {
    pub partition: String,
    pub offset: u64,
    pub raw: Vec<u8>,
    /// `invalid_json`, `invalid_utf8`, `wrong_type`, `missing_field`, `too_large`,
    /// `too_deep`, `duplicate`, `transform`.
    pub kind: &'static str,
    pub reason: String,
    /// The source's own id of the record (Kinesis `sequence[:sub-sequence]`), if it has one.
    pub record_id: Option<String>,
}

/// The outcome of decoding one chunk.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Good records, in input order; `None` if there were none.
    pub batch: Option<RecordBatch>,
    /// Byte ranges (within the chunk) of the good records, row by row.
    pub good: Vec<Range<usize>>,
    pub bad: Vec<BadRecord>,
    /// Non-blank lines seen.
    pub lines: usize,
}

#[derive(Debug, Clone)]
pub struct NdjsonDecoder {
    /// Decode schema: every top-level field nullable (required ones are checked after).
    schema: SchemaRef,
    /// (column index, name) of fields that must be present and non-null.
    required: Vec<(usize, String)>,
    max_record_bytes: usize,
    /// The one-pass decoder, when the schema's types are all ones it plans for.
    fast: Option<FastDecoder>,
}

struct Line {
    range: Range<usize>,
    offset: u64,
}

impl NdjsonDecoder {
    pub fn new(schema: SchemaRef, required: &[String], max_record_bytes: usize) -> Self {
        let required = required
            .iter()
            .filter_map(|n| schema.index_of(n).ok().map(|i| (i, n.clone())))
            .collect();
        Self {
            fast: FastDecoder::new(schema.clone()),
            schema,
            required,
            max_record_bytes,
        }
    }

    /// The same decoder without its one-pass fast path (arrow-json only), for tests that
    /// check the two agree.
    #[doc(hidden)]
    pub fn arrow_only(mut self) -> Self {
        self.fast = None;
        self
    }

    /// Decodes a chunk of whole lines. Bad records before `skip_bad_before` (already in the
    /// dead-letter table from an earlier run) are not reported again.
    pub fn decode(&self, chunk: &SourceBatch, skip_bad_before: u64) -> Decoded {
        let data = &chunk.records;
        let mut out = Decoded::default();
        let mut lines = Vec::new();
        let mut oversize = false;
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..])
                .map(|i| start + i)
                .unwrap_or(data.len());
            let mut e = end;
            if e > start && data[e - 1] == b'\r' {
                e -= 1;
            }
            let line = &data[start..e];
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.lines += 1;
                let offset = chunk.start.offset + start as u64;
                if line.len() > self.max_record_bytes {
                    oversize = true;
                    if offset >= skip_bad_before {
                        out.bad.push(BadRecord {
                            partition: chunk.start.partition.clone(),
                            offset,
                            // Keep a prefix: enough to identify the record, bounded in size.
                            raw: line[..line.len().min(64 * 1024)].to_vec(),
                            record_id: None,
                            kind: "too_large",
                            reason: format!(
                                "record is {} bytes, over max_record_bytes = {}",
                                line.len(),
                                self.max_record_bytes
                            ),
                        });
                    }
                } else if let Some(depth) = too_deep(line) {
                    // arrow-json describes a wrong-typed value by serializing it recursively:
                    // a deeply nested record would overflow the stack. Cut it out first.
                    oversize = true;
                    if offset >= skip_bad_before {
                        out.bad.push(BadRecord {
                            partition: chunk.start.partition.clone(),
                            offset,
                            raw: line[..line.len().min(64 * 1024)].to_vec(),
                            record_id: None,
                            kind: "too_deep",
                            reason: format!(
                                "record nests arrays/objects {depth} deep, over the limit of {MAX_DEPTH}"
                            ),
                        });
                    }
                } else {
                    lines.push(Line {
                        range: start..e,
                        offset,
                    });
                }
            }
            start = end + 1;
        }
        if lines.is_empty() {
            return out;
        }

        // Fast path: the whole chunk in one go (only when no line was cut out).
        let fast = if oversize {
            None
        } else {
            self.fast
                .as_ref()
                .and_then(|f| f.decode(data, &lines))
                .or_else(|| self.decode_bytes(data, lines.len()).ok())
        };
        let (batches, mut good_idx) = match fast {
            Some(b) => (vec![b], (0..lines.len()).collect::<Vec<_>>()),
            None => {
                let mut batches = Vec::new();
                let mut good = Vec::new();
                let idx: Vec<usize> = (0..lines.len()).collect();
                self.bisect(
                    data,
                    &lines,
                    &idx,
                    &mut batches,
                    &mut good,
                    &mut out.bad,
                    chunk,
                    skip_bad_before,
                );
                (batches, good)
            }
        };
        if batches.is_empty() {
            return out;
        }
        match self.finish(
            &batches,
            &mut good_idx,
            data,
            &lines,
            chunk,
            skip_bad_before,
            &mut out,
        ) {
            Ok(batch) => {
                out.bad.sort_by_key(|b| b.offset);
                out.good = good_idx
                    .into_iter()
                    .map(|i| lines[i].range.clone())
                    .collect();
                if batch.num_rows() > 0 {
                    out.batch = Some(batch);
                }
            }
            // Not one record's fault: the chunk's decoded records are all dead-lettered.
            Err(e) => {
                for &i in &good_idx {
                    self.push_bad(
                        &mut out.bad,
                        data,
                        &lines[i],
                        chunk,
                        skip_bad_before,
                        "wrong_type",
                        e.to_string(),
                    );
                }
                out.bad.sort_by_key(|b| b.offset);
            }
        }
        out
    }

    /// Joins the decoded pieces and splits off rows missing a required field.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        batches: &[RecordBatch],
        good_idx: &mut Vec<usize>,
        data: &[u8],
        lines: &[Line],
        chunk: &SourceBatch,
        skip_bad_before: u64,
        out: &mut Decoded,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let batch = concat_batches(&self.schema, batches)?;
        let Some(missing) = self.missing_required(&batch) else {
            return Ok(batch);
        };
        let mut keep_idx = Vec::with_capacity(good_idx.len());
        for (row, &li) in good_idx.iter().enumerate() {
            if missing.value(row) {
                let field = self
                    .required
                    .iter()
                    .find(|(c, _)| batch.column(*c).is_null(row))
                    .map(|(_, n)| n.as_str())
                    .unwrap_or("?");
                self.push_bad(
                    &mut out.bad,
                    data,
                    &lines[li],
                    chunk,
                    skip_bad_before,
                    "missing_field",
                    format!("required field `{field}` is missing or null"),
                );
            } else {
                keep_idx.push(li);
            }
        }
        *good_idx = keep_idx;
        filter_record_batch(&batch, &not(&missing)?)
    }

    fn missing_required(&self, batch: &RecordBatch) -> Option<BooleanArray> {
        let mut mask: Option<BooleanArray> = None;
        for (c, _) in &self.required {
            let col = batch.column(*c);
            if col.null_count() == 0 {
                continue;
            }
            let nulls = arrow::compute::is_null(col).ok()?;
            mask = Some(match mask {
                None => nulls,
                Some(m) => or(&m, &nulls).ok()?,
            });
        }
        mask
    }

    /// Decodes bytes holding exactly `expect_rows` JSON objects.
    fn decode_bytes(&self, bytes: &[u8], expect_rows: usize) -> Result<RecordBatch, String> {
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(expect_rows.max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let fixed = surrogates::pairs_as_utf8(bytes);
        let mut buf: &[u8] = &fixed;
        while !buf.is_empty() {
            let n = decoder.decode(buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            buf = &buf[n..];
            if !buf.is_empty() && decoder.len() >= expect_rows {
                return Err("more than one JSON value on a line".into());
            }
        }
        let batch = decoder
            .flush()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        if batch.num_rows() != expect_rows {
            return Err(format!(
                "expected one JSON object per line, found {} values in {} lines",
                batch.num_rows(),
                expect_rows
            ));
        }
        Ok(batch)
    }

    #[allow(clippy::too_many_arguments)]
    fn bisect(
        &self,
        data: &[u8],
        lines: &[Line],
        idx: &[usize],
        batches: &mut Vec<RecordBatch>,
        good: &mut Vec<usize>,
        bad: &mut Vec<BadRecord>,
        chunk: &SourceBatch,
        skip_bad_before: u64,
    ) {
        let mut joined = Vec::new();
        for &i in idx {
            joined.extend_from_slice(&data[lines[i].range.clone()]);
            joined.push(b'\n');
        }
        match self.decode_bytes(&joined, idx.len()) {
            Ok(b) => {
                batches.push(b);
                good.extend_from_slice(idx);
            }
            Err(e) if idx.len() == 1 => {
                let line = &data[lines[idx[0]].range.clone()];
                let (kind, reason) = classify(line, e);
                self.push_bad(
                    bad,
                    data,
                    &lines[idx[0]],
                    chunk,
                    skip_bad_before,
                    kind,
                    reason,
                );
            }
            Err(_) => {
                let mid = idx.len() / 2;
                self.bisect(
                    data,
                    lines,
                    &idx[..mid],
                    batches,
                    good,
                    bad,
                    chunk,
                    skip_bad_before,
                );
                self.bisect(
                    data,
                    lines,
                    &idx[mid..],
                    batches,
                    good,
                    bad,
                    chunk,
                    skip_bad_before,
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_bad(
        &self,
        bad: &mut Vec<BadRecord>,
        data: &[u8],
        line: &Line,
        chunk: &SourceBatch,
        skip_bad_before: u64,
        kind: &'static str,
        reason: String,
    ) {
        if line.offset < skip_bad_before {
            return;
        }
        bad.push(BadRecord {
            partition: chunk.start.partition.clone(),
            offset: line.offset,
            raw: data[line.range.clone()].to_vec(),
            kind,
            reason,
            record_id: None,
        });
    }
}

/// Deepest nesting of arrays and objects a record may have (schemas need a handful).
pub const MAX_DEPTH: usize = 64;

/// The nesting depth of a line if it is over `MAX_DEPTH`. Counting brackets first (a SIMD
/// scan) keeps the exact, string-aware walk off ordinary records.
fn too_deep(line: &[u8]) -> Option<usize> {
    if memchr::memchr2_iter(b'[', b'{', line).count() <= MAX_DEPTH {
        return None;
    }
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in line {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max > MAX_DEPTH).then_some(max)
}

/// Names what is wrong with a line arrow-json rejected, in words a user can act on.
fn classify(line: &[u8], arrow_err: String) -> (&'static str, String) {
    if std::str::from_utf8(line).is_err() {
        return ("invalid_utf8", "record is not valid UTF-8".into());
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
        Err(e) => ("invalid_json", format!("invalid JSON: {e}")),
        Ok(_) if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => (
            "invalid_json",
            "a record must be a JSON object ({…}), this is another JSON value".into(),
        ),
        Ok(_) => {
            let msg = arrow_err.trim_start_matches("Json error: ").to_string();
            if msg.contains("expected one JSON object") || msg.contains("more than one JSON") {
                ("invalid_json", msg)
            } else {
                ("wrong_type", msg)
            }
        }
    }
}

/// Required (non-nullable) top-level fields of a schema.
pub fn required_fields(schema: &arrow::datatypes::Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| !f.is_nullable())
        .map(|f| f.name().clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    use tributary_connectors::Position;

    fn decoder() -> NdjsonDecoder {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::Int64, true),
            Field::new(
                "items",
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::Struct(vec![Field::new("q", DataType::Int32, true)].into()),
                    true,
                ))),
                true,
            ),
        ]));
        NdjsonDecoder::new(schema, &["id".into(), "ts".into()], 200)
    }

    fn chunk(text: &str) -> SourceBatch {
        SourceBatch {
            records: text.as_bytes().to_vec(),
            start: Position {
                partition: "f".into(),
                offset: 1000,
            },
            end: tributary_connectors::Offset::Bytes(1000 + text.len() as u64),
            ids: Vec::new(),
        }
    }

    #[test]
    fn bad_records_do_not_poison_their_batch() {
        let text = [
            r#"{"id":"a","ts":"2024-06-03T10:00:00Z","n":1,"items":[{"q":1}]}"#,
            r#"{"id":"b","ts":"2024-06-03T10:00:00Z","n":"x"}"#,
            r#"{"id":"c","ts":"2024-06-03T10:00"#,
            r#"{"ts":"2024-06-03T10:00:00Z","n":3}"#,
            "",
            r#"{"id":"e","ts":"not-a-time"}"#,
            r#"{"id":"f","ts":"2024-06-03T11:00:00Z","items":{"q":1}}"#,
            &format!(
                r#"{{"id":"g","ts":"2024-06-03T10:00:00Z","pad":"{}"}}"#,
                "x".repeat(300)
            ),
            r#"{"id":"h","ts":"2024-06-03T12:00:00Z","n":8}"#,
        ]
        .join("\n");
        let d = decoder().decode(&chunk(&text), 0);
        assert_eq!(d.lines, 8);
        let b = d.batch.unwrap();
        assert_eq!(b.num_rows(), 2);
        let kinds: Vec<&str> = d.bad.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                "wrong_type",
                "invalid_json",
                "missing_field",
                "wrong_type",
                "wrong_type",
                "too_large"
            ]
        );
        assert_eq!(
            d.bad[0].offset,
            1000 + text.find(r#"{"id":"b""#).unwrap() as u64
        );
        assert!(d.bad[2].reason.contains("`id`"));
        assert_eq!(d.good.len(), 2);
        // Already dead-lettered records are not reported twice.
        let skip = d.bad[3].offset;
        let again = decoder().decode(&chunk(&text), skip);
        assert_eq!(again.bad.len(), 3);
    }

    #[test]
    fn nesting_depth_counts_brackets_outside_strings() {
        assert_eq!(too_deep(b"{\"a\":[1,2,{\"b\":3}]}"), None);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(too_deep(deep.as_bytes()), Some(100));
        // Brackets inside strings (escaped quotes included) are text, not nesting.
        let s = format!("{{\"s\":\"\\\"{}\"}}", "[".repeat(100));
        assert_eq!(too_deep(s.as_bytes()), None);
    }

    #[test]
    fn clean_chunk_takes_fast_path() {
        let text: String = (0..100)
            .map(|i| {
                format!("{{\"id\":\"{i}\",\"ts\":\"2024-06-03T10:00:00.123Z\",\"n\":{i}}}\r\n")
            })
            .collect();
        let d = decoder().decode(&chunk(&text), 0);
        assert_eq!(d.batch.unwrap().num_rows(), 100);
        assert!(d.bad.is_empty());
    }
}
