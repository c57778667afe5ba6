//! A schema-directed NDJSON decoder: one pass over the bytes, values parsed straight into
//! column buffers. arrow-json first builds a tape of the whole chunk and then walks it
//! column by column; on the benchmark's events that was half of all ingest CPU.
//!
//! It is a fast path, not a second semantics: it accepts only the plain forms of each
//! type and parses them with the same functions arrow-json uses (lexical-core numbers,
//! arrow's `string_to_datetime`). Anything else — a bad line, a number in a string column,
//! a duplicate key, a null where the schema forbids one — makes it give up on the chunk
//! (`None`), and the chunk goes through arrow-json as before. So an answer from here is
//! arrow-json's answer (differential tests below), only sooner.

use std::sync::Arc;

use arrow::array::builder::BooleanBufferBuilder;
use arrow::array::timezone::Tz;
use arrow::array::{
    Array, ArrayRef, BooleanArray, ListArray, PrimitiveArray, StringArray, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, FieldRef, Fields, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, SchemaRef, TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use super::Line;
use num_traits::NumCast;

/// The chunk is not for this path; arrow-json decides.
struct GiveUp;
type Step = std::result::Result<(), GiveUp>;

/// Decodes chunks whose schema it can plan for (`new` returns `None` otherwise).
#[derive(Debug, Clone)]
pub(super) struct FastDecoder {
    schema: SchemaRef,
    fields: Fields,
}

impl FastDecoder {
    pub fn new(schema: SchemaRef) -> Option<Self> {
        // Plan once to reject unsupported types up front.
        Column::for_fields(schema.fields())?;
        Some(Self {
            fields: schema.fields().clone(),
            schema,
        })
    }

    /// Decodes exactly one JSON object per line range, or gives up.
    pub fn decode(&self, data: &[u8], lines: &[Line]) -> Option<RecordBatch> {
        // Whole-chunk checks keep them out of the per-string loop: valid UTF-8, and no
        // control bytes but line ends (a raw tab or control inside a string is left to
        // arrow-json's rules).
        std::str::from_utf8(data).ok()?;
        let controls = data.chunks(64).fold(false, |acc, c| {
            acc | c.iter().fold(false, |a, &b| {
                a | ((b < 0x20) & (b != b'\n') & (b != b'\r'))
            })
        });
        if controls {
            return None;
        }
        let mut root = StructCol::new(self.fields.clone())?;
        root.reserve(lines.len());
        let mut scratch = Vec::new();
        for Line { range: r, .. } in lines {
            let mut c = Cursor {
                b: &data[..r.end],
                i: r.start,
                scratch: &mut scratch,
            };
            c.ws();
            root.parse_object(&mut c).ok()?;
            c.ws();
            if c.i != r.end {
                return None;
            }
        }
        let columns = root.finish_columns().ok()?;
        RecordBatch::try_new(self.schema.clone(), columns).ok()
    }
}

struct Cursor<'a, 's> {
    b: &'a [u8],
    i: usize,
    /// Unescaped string bytes (only strings with escapes go through it).
    scratch: &'s mut Vec<u8>,
}

impl<'a> Cursor<'a, '_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Step {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// A string at the cursor (opening quote included): its raw bytes if it has no
    /// escapes, else its unescaped bytes in `scratch` (`Err` on a bad escape).
    #[inline]
    fn string(&mut self) -> std::result::Result<StrRef<'a>, GiveUp> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(n) if rest[n] == b'"' => {
                self.i = start + n + 1;
                Ok(StrRef::Raw(&rest[..n]))
            }
            Some(_) => self.escaped(start),
            None => Err(GiveUp),
        }
    }

    #[cold]
    fn escaped(&mut self, start: usize) -> std::result::Result<StrRef<'a>, GiveUp> {
        self.scratch.clear();
        let mut i = start;
        loop {
            let rest = &self.b[i..];
            let n = memchr::memchr2(b'"', b'\\', rest).ok_or(GiveUp)?;
            self.scratch.extend_from_slice(&rest[..n]);
            i += n;
            if self.b[i] == b'"' {
                self.i = i + 1;
                return Ok(StrRef::Scratch);
            }
            let e = *self.b.get(i + 1).ok_or(GiveUp)?;
            i += 2;
            let ch = match e {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = self.hex4(i)?;
                    i += 4;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        if self.b.get(i..i + 2) != Some(b"\\u") {
                            return Err(GiveUp);
                        }
                        let lo = self.hex4(i + 2)?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(GiveUp);
                        }
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    char::from_u32(code).ok_or(GiveUp)?
                }
                _ => return Err(GiveUp),
            };
            let mut buf = [0u8; 4];
            self.scratch
                .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }

    fn hex4(&self, at: usize) -> std::result::Result<u32, GiveUp> {
        let h = self.b.get(at..at + 4).ok_or(GiveUp)?;
        let s = std::str::from_utf8(h).map_err(|_| GiveUp)?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GiveUp);
        }
        u32::from_str_radix(s, 16).map_err(|_| GiveUp)
    }

    /// A number token in strict JSON grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline]
    fn number(&mut self) -> std::result::Result<&'a [u8], GiveUp> {
        self.ws();
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(GiveUp),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(GiveUp);
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(GiveUp);
            }
        }
        self.i = i;
        Ok(&b[start..i])
    }

    /// `null` at the cursor? (consumed if so)
    #[inline]
    fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// Skips any JSON value (an unknown field's), checking its grammar as arrow-json would.
    fn skip(&mut self, depth: usize) -> Step {
        if depth > super::MAX_DEPTH {
            return Err(GiveUp);
        }
        match self.peek().ok_or(GiveUp)? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                self.i += 1;
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(GiveUp),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(GiveUp),
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }
}

enum StrRef<'a> {
    Raw(&'a [u8]),
    Scratch,
}

/// Validity bits of one column, allocated only once a null appears.
#[derive(Default)]
struct Validity {
    bits: Option<BooleanBufferBuilder>,
    len: usize,
}

impl Validity {
    #[inline]
    fn push(&mut self, valid: bool) {
        match (&mut self.bits, valid) {
            (Some(b), v) => b.append(v),
            (None, true) => {}
            (None, false) => {
                let mut b = BooleanBufferBuilder::new(self.len.max(64) * 2);
                b.append_n(self.len, true);
                b.append(false);
                self.bits = Some(b);
            }
        }
        self.len += 1;
    }

    fn finish(&mut self) -> Option<NullBuffer> {
        self.bits.take().map(|mut b| NullBuffer::new(b.finish()))
    }
}

/// One column being built, by type.
enum Column {
    Utf8 {
        offsets: Vec<i32>,
        data: Vec<u8>,
        valid: Validity,
    },
    Bool {
        values: BooleanBufferBuilder,
        valid: Validity,
    },
    Int8(Prim<Int8Type>),
    Int16(Prim<Int16Type>),
    Int32(Prim<Int32Type>),
    Int64(Prim<Int64Type>),
    UInt8(Prim<UInt8Type>),
    UInt16(Prim<UInt16Type>),
    UInt32(Prim<UInt32Type>),
    UInt64(Prim<UInt64Type>),
    Float32(Prim<Float32Type>),
    Float64(Prim<Float64Type>),
    Timestamp {
        values: Vec<i64>,
        valid: Validity,
        unit: TimeUnit,
        tz: Option<Tz>,
        data_type: DataType,
    },
    List {
        offsets: Vec<i32>,
        valid: Validity,
        item: FieldRef,
        child: Box<Column>,
    },
    Struct(StructCol),
}

struct Prim<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    valid: Validity,
}

impl<T: ArrowPrimitiveType> Default for Prim<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            valid: Validity::default(),
        }
    }
}

impl<T: ArrowPrimitiveType> Prim<T> {
    #[inline]
    fn push(&mut self, v: Option<T::Native>) {
        self.values.push(v.unwrap_or_default());
        self.valid.push(v.is_some());
    }

    fn finish(&mut self) -> ArrayRef {
        let values = ScalarBuffer::from(std::mem::take(&mut self.values));
        Arc::new(PrimitiveArray::<T>::new(values, self.valid.finish()))
    }
}

/// arrow-json's integer parse: the integer itself, else a float that fits.
fn parse_int<N: lexical_core::FromLexical + NumCast>(s: &[u8]) -> Option<N> {
    lexical_core::parse::<N>(s)
        .ok()
        .or_else(|| lexical_core::parse::<f64>(s).ok().and_then(NumCast::from))
}

impl Column {
    fn for_type(dt: &DataType) -> Option<Column> {
        Some(match dt {
            DataType::Utf8 => Column::Utf8 {
                offsets: vec![0],
                data: Vec::new(),
                valid: Validity::default(),
            },
            DataType::Boolean => Column::Bool {
                values: BooleanBufferBuilder::new(1024),
                valid: Validity::default(),
            },
            DataType::Int8 => Column::Int8(Prim::default()),
            DataType::Int16 => Column::Int16(Prim::default()),
            DataType::Int32 => Column::Int32(Prim::default()),
            DataType::Int64 => Column::Int64(Prim::default()),
            DataType::UInt8 => Column::UInt8(Prim::default()),
            DataType::UInt16 => Column::UInt16(Prim::default()),
            DataType::UInt32 => Column::UInt32(Prim::default()),
            DataType::UInt64 => Column::UInt64(Prim::default()),
            DataType::Float32 => Column::Float32(Prim::default()),
            DataType::Float64 => Column::Float64(Prim::default()),
            DataType::Timestamp(unit, tz) => Column::Timestamp {
                values: Vec::new(),
                valid: Validity::default(),
                unit: *unit,
                tz: match tz {
                    Some(tz) => Some(tz.parse().ok()?),
                    None => None,
                },
                data_type: dt.clone(),
            },
            DataType::List(item) => Column::List {
                offsets: vec![0],
                valid: Validity::default(),
                child: Box::new(Column::for_type(item.data_type())?),
                item: item.clone(),
            },
            DataType::Struct(fields) => Column::Struct(StructCol::new(fields.clone())?),
            _ => return None,
        })
    }

    fn for_fields(fields: &Fields) -> Option<Vec<Column>> {
        fields
            .iter()
            .map(|f| Column::for_type(f.data_type()))
            .collect()
    }

    fn push_null(&mut self) {
        match self {
            Column::Utf8 {
                offsets,
                data,
                valid,
            } => {
                offsets.push(data.len() as i32);
                valid.push(false);
            }
            Column::Bool { values, valid } => {
                values.append(false);
                valid.push(false);
            }
            Column::Int8(p) => p.push(None),
            Column::Int16(p) => p.push(None),
            Column::Int32(p) => p.push(None),
            Column::Int64(p) => p.push(None),
            Column::UInt8(p) => p.push(None),
            Column::UInt16(p) => p.push(None),
            Column::UInt32(p) => p.push(None),
            Column::UInt64(p) => p.push(None),
            Column::Float32(p) => p.push(None),
            Column::Float64(p) => p.push(None),
            Column::Timestamp { values, valid, .. } => {
                values.push(0);
                valid.push(false);
            }
            Column::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.push(false);
            }
            Column::Struct(s) => s.push_null(),
        }
    }

    /// Parses one value (not `null`: the caller handled it) into the column.
    fn parse(&mut self, c: &mut Cursor<'_, '_>) -> Step {
        match self {
            Column::Utf8 {
                offsets,
                data,
                valid,
            } => {
                match c.string()? {
                    StrRef::Raw(s) => data.extend_from_slice(s),
                    StrRef::Scratch => data.extend_from_slice(c.scratch),
                }
                offsets.push(i32::try_from(data.len()).map_err(|_| GiveUp)?);
                valid.push(true);
            }
            Column::Bool { values, valid } => {
                match c.peek() {
                    Some(b't') => {
                        c.literal(b"true")?;
                        values.append(true);
                    }
                    Some(b'f') => {
                        c.literal(b"false")?;
                        values.append(false);
                    }
                    _ => return Err(GiveUp),
                }
                valid.push(true);
            }
            Column::Int8(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::Int16(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::Int32(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::Int64(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::UInt8(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::UInt16(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::UInt32(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::UInt64(p) => p.push(Some(parse_int(c.number()?).ok_or(GiveUp)?)),
            Column::Float32(p) => p.push(Some(
                lexical_core::parse::<f32>(c.number()?).map_err(|_| GiveUp)?,
            )),
            Column::Float64(p) => p.push(Some(
                lexical_core::parse::<f64>(c.number()?).map_err(|_| GiveUp)?,
            )),
            Column::Timestamp {
                values,
                valid,
                unit,
                tz,
                ..
            } => {
                // Strings only: numbers in a timestamp column are left to arrow-json.
                let s = match c.string()? {
                    StrRef::Raw(s) => std::str::from_utf8(s).map_err(|_| GiveUp)?,
                    StrRef::Scratch => std::str::from_utf8(c.scratch).map_err(|_| GiveUp)?,
                };
                let v = match tz {
                    Some(tz) => timestamp_value(string_to_datetime(tz, s).ok(), *unit),
                    None => timestamp_value(string_to_datetime(&chrono::Utc, s).ok(), *unit),
                };
                values.push(v.ok_or(GiveUp)?);
                valid.push(true);
            }
            Column::List {
                offsets,
                valid,
                item,
                child,
            } => {
                c.eat(b'[')?;
                let mut n = 0usize;
                if c.peek() == Some(b']') {
                    c.i += 1;
                } else {
                    loop {
                        if c.null() {
                            if !item.is_nullable() {
                                return Err(GiveUp);
                            }
                            child.push_null();
                        } else {
                            child.parse(c)?;
                        }
                        n += 1;
                        match c.peek() {
                            Some(b',') => c.i += 1,
                            Some(b']') => {
                                c.i += 1;
                                break;
                            }
                            _ => return Err(GiveUp),
                        }
                    }
                }
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last.checked_add(n as i32).ok_or(GiveUp)?);
                valid.push(true);
            }
            Column::Struct(s) => s.parse_object(c)?,
        }
        Ok(())
    }

    fn finish(&mut self) -> std::result::Result<ArrayRef, GiveUp> {
        Ok(match self {
            Column::Utf8 {
                offsets,
                data,
                valid,
            } => Arc::new(
                StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::take(offsets))),
                    std::mem::take(data).into(),
                    valid.finish(),
                )
                .map_err(|_| GiveUp)?,
            ),
            Column::Bool { values, valid } => {
                Arc::new(BooleanArray::new(values.finish(), valid.finish()))
            }
            Column::Int8(p) => p.finish(),
            Column::Int16(p) => p.finish(),
            Column::Int32(p) => p.finish(),
            Column::Int64(p) => p.finish(),
            Column::UInt8(p) => p.finish(),
            Column::UInt16(p) => p.finish(),
            Column::UInt32(p) => p.finish(),
            Column::UInt64(p) => p.finish(),
            Column::Float32(p) => p.finish(),
            Column::Float64(p) => p.finish(),
            Column::Timestamp {
                values,
                valid,
                data_type,
                ..
            } => {
                let data = arrow::array::ArrayData::builder(data_type.clone())
                    .len(values.len())
                    .add_buffer(ScalarBuffer::from(std::mem::take(values)).into_inner())
                    .nulls(valid.finish())
                    .build()
                    .map_err(|_| GiveUp)?;
                arrow::array::make_array(data)
            }
            Column::List {
                offsets,
                valid,
                item,
                child,
            } => {
                let values = child.finish()?;
                Arc::new(
                    ListArray::try_new(
                        item.clone(),
                        OffsetBuffer::new(ScalarBuffer::from(std::mem::take(offsets))),
                        values,
                        valid.finish(),
                    )
                    .map_err(|_| GiveUp)?,
                )
            }
            Column::Struct(s) => {
                let children = s.finish_columns()?;
                let nulls = s.valid.finish();
                Arc::new(
                    StructArray::try_new(s.fields.clone(), children, nulls).map_err(|_| GiveUp)?,
                )
            }
        })
    }
}

/// Byte equality for short keys, word by word: a call to the library compare costs more
/// than the compare itself.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i + 8 <= a.len() {
        let (Ok(x), Ok(y)) = (
            <[u8; 8]>::try_from(&a[i..i + 8]),
            <[u8; 8]>::try_from(&b[i..i + 8]),
        ) else {
            return false;
        };
        if u64::from_ne_bytes(x) != u64::from_ne_bytes(y) {
            return false;
        }
        i += 8;
    }
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

fn timestamp_value<T: chrono::TimeZone>(
    t: Option<chrono::DateTime<T>>,
    unit: TimeUnit,
) -> Option<i64> {
    let t = t?;
    match unit {
        TimeUnit::Second => Some(t.timestamp()),
        TimeUnit::Millisecond => Some(t.timestamp_millis()),
        TimeUnit::Microsecond => Some(t.timestamp_micros()),
        TimeUnit::Nanosecond => t.timestamp_nanos_opt(),
    }
}

/// An object's fields: looked up by the next expected position first (producers write
/// keys in one order), then by a scan.
struct StructCol {
    fields: Fields,
    /// Field names that can be matched in place (no quote or backslash in them).
    plain_names: Vec<Option<Vec<u8>>>,
    columns: Vec<Column>,
    valid: Validity,
    /// `seen[i] == stamp`: field i was set in the current object.
    seen: Vec<u32>,
    stamp: u32,
    rows: usize,
}

impl StructCol {
    fn new(fields: Fields) -> Option<Self> {
        let columns = Column::for_fields(&fields)?;
        let plain_names = fields
            .iter()
            .map(|f| {
                let n = f.name().as_bytes();
                (!n.contains(&b'"') && !n.contains(&b'\\')).then(|| n.to_vec())
            })
            .collect();
        Some(Self {
            seen: vec![0; fields.len()],
            plain_names,
            fields,
            columns,
            valid: Validity::default(),
            stamp: 0,
            rows: 0,
        })
    }

    fn reserve(&mut self, rows: usize) {
        for c in &mut self.columns {
            match c {
                Column::Utf8 { offsets, .. } => offsets.reserve(rows),
                Column::Int64(p) => p.values.reserve(rows),
                Column::Float64(p) => p.values.reserve(rows),
                Column::Timestamp { values, .. } => values.reserve(rows),
                _ => {}
            }
        }
    }

    fn push_null(&mut self) {
        for c in &mut self.columns {
            c.push_null();
        }
        self.valid.push(false);
        self.rows += 1;
    }

    fn parse_object(&mut self, c: &mut Cursor<'_, '_>) -> Step {
        c.eat(b'{')?;
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.iter_mut().for_each(|s| *s = u32::MAX);
            self.stamp = 1;
        }
        let mut next = 0usize;
        if c.peek() == Some(b'}') {
            c.i += 1;
        } else {
            loop {
                // The expected key, matched in place: no scan for its closing quote, no
                // library compare (both showed in profiles, at ~18 keys per record).
                c.ws();
                let at = c.i + 1;
                let expected = self.plain_names.get(next).and_then(|n| n.as_deref());
                let idx = match expected {
                    Some(name)
                        if c.b.get(c.i) == Some(&b'"')
                            && c.b.get(at + name.len()) == Some(&b'"')
                            && same_bytes(&c.b[at..at + name.len()], name) =>
                    {
                        c.i = at + name.len() + 1;
                        Some(next)
                    }
                    _ => {
                        let key = match c.string()? {
                            StrRef::Raw(k) => k,
                            // Escaped keys are rare: arrow-json matches them.
                            StrRef::Scratch => return Err(GiveUp),
                        };
                        self.fields
                            .iter()
                            .position(|f| same_bytes(f.name().as_bytes(), key))
                    }
                };
                c.eat(b':')?;
                match idx {
                    Some(i) => {
                        if self.seen[i] == self.stamp {
                            return Err(GiveUp);
                        }
                        self.seen[i] = self.stamp;
                        if c.null() {
                            if !self.fields[i].is_nullable() {
                                return Err(GiveUp);
                            }
                            self.columns[i].push_null();
                        } else {
                            self.columns[i].parse(c)?;
                        }
                        next = i + 1;
                    }
                    None => c.skip(1)?,
                }
                match c.peek() {
                    Some(b',') => c.i += 1,
                    Some(b'}') => {
                        c.i += 1;
                        break;
                    }
                    _ => return Err(GiveUp),
                }
            }
        }
        for i in 0..self.fields.len() {
            if self.seen[i] != self.stamp {
                if !self.fields[i].is_nullable() {
                    return Err(GiveUp);
                }
                self.columns[i].push_null();
            }
        }
        self.valid.push(true);
        self.rows += 1;
        Ok(())
    }

    fn finish_columns(&mut self) -> std::result::Result<Vec<ArrayRef>, GiveUp> {
        let rows = self.rows;
        self.columns
            .iter_mut()
            .map(|c| {
                let a = c.finish()?;
                (a.len() == rows).then_some(a).ok_or(GiveUp)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use arrow_json::ReaderBuilder;

    fn schema() -> SchemaRef {
        let item = DataType::Struct(
            vec![
                Field::new("sku", DataType::Utf8, true),
                Field::new("qty", DataType::Int32, true),
                Field::new("price", DataType::Float64, true),
            ]
            .into(),
        );
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::Int64, true),
            Field::new("small", DataType::Int8, true),
            Field::new("u", DataType::UInt32, true),
            Field::new("f", DataType::Float32, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new(
                "items",
                DataType::List(Arc::new(Field::new("item", item, true))),
                true,
            ),
            Field::new(
                "ship",
                DataType::Struct(
                    vec![
                        Field::new("city", DataType::Utf8, true),
                        Field::new("zip", DataType::Utf8, false),
                    ]
                    .into(),
                ),
                true,
            ),
            Field::new(
                "naive",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                true,
            ),
        ]))
    }

    fn ranges(text: &str) -> Vec<Line> {
        let mut out = Vec::new();
        let mut start = 0;
        for line in text.split('\n') {
            if !line.trim().is_empty() {
                out.push(Line {
                    range: start..start + line.len(),
                    offset: start as u64,
                });
            }
            start += line.len() + 1;
        }
        out
    }

    fn arrow_json(text: &str) -> Option<RecordBatch> {
        let mut d = ReaderBuilder::new(schema())
            .with_batch_size(1 << 20)
            .build_decoder()
            .ok()?;
        d.decode(text.as_bytes()).ok()?;
        d.flush().ok()?
    }

    fn fast(text: &str) -> Option<RecordBatch> {
        FastDecoder::new(schema())?.decode(text.as_bytes(), &ranges(text))
    }

    /// Where the fast path answers, arrow-json answers the same.
    fn same(text: &str) {
        let f = fast(text).unwrap_or_else(|| panic!("fast path gave up on {text}"));
        let a = arrow_json(text).expect("arrow-json decodes it");
        assert_eq!(f, a, "{text}");
    }

    #[test]
    fn answers_equal_arrow_json() {
        same(
            r#"{"id":"a","ts":"2024-06-03T17:04:11.512Z","n":1,"items":[{"sku":"S-1","qty":2,"price":19.99},{"sku":"S-2","qty":1,"price":0.5}],"ship":{"city":"Berlin","zip":"10115"}}
{"id":"b","ts":"2024-06-03T17:04:11Z","n":-7,"items":[],"ship":null,"ok":true}
{ "ts" : "2024-06-03 10:00:00+02:00" , "id" : "c\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00" , "n" : null , "extra" : {"deep":[1,2,{"x":"y\u0041"}],"e":-1.5e+3} , "items" : null }
{"id":"é unicode ✓","n":1.0,"small":-128,"u":4294967295,"f":1e-3,"ok":false,"items":[null,{"qty":3}],"naive":"2024-06-03T10:00:00.123456"}
{"id":"d","n":12345678901234,"tags":["x","y"],"ship":{"zip":"1"},"items":[{"price":1E2,"sku":"z"}]}
{}"#,
        );
        // Field order differing from the schema, and every field missing.
        same("{\"ok\":true,\"id\":\"x\",\"n\":0}\n{\"zz\":[]}\n");
    }

    #[test]
    fn gives_up_where_arrow_json_decides() {
        for bad in [
            r#"{"id":1}"#,              // number in a string column
            r#"{"n":"12"}"#,            // string in a number column
            r#"{"id":"a","id":"b"}"#,   // duplicate key
            r#"{"id":"a"} {"id":"b"}"#, // two values on a line
            r#"{"id":"a""#,             // truncated
            r#"[1,2]"#,                 // not an object
            r#"{"n":01}"#,              // not JSON's number grammar
            r#"{"id":"\x"}"#,           // bad escape
            r#"{"ship":{"city":"c"}}"#, // required nested field missing
            r#"{"tags":["a",null]}"#,   // null item, items not nullable
            r#"{"ts":"yesterday"}"#,    // not a time
            r#"{"ts":1717459199999}"#,  // number in a timestamp column
            r#"{"small":300}"#,         // out of range
            "{\"id\":\"tab\there\"}",   // raw control byte
            r#"{"extra":[1,2}"#,        // bad skipped value
            r#"{"ok":"true"}"#,         // string in a boolean column
        ] {
            assert!(fast(bad).is_none(), "fast path took {bad}");
        }
    }

    #[test]
    fn random_records_match() {
        // A small deterministic generator over the schema's shapes.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut text = String::new();
        for i in 0..2000 {
            let mut parts = Vec::new();
            if rnd(10) > 0 {
                parts.push(format!("\"id\":\"r{i}\\u00{:02x}\"", 0x41 + rnd(26)));
            }
            if rnd(10) > 0 {
                parts.push(format!(
                    "\"ts\":\"2024-0{}-1{}T0{}:{}{}:0{}.{}Z\"",
                    1 + rnd(9),
                    rnd(10),
                    rnd(10),
                    rnd(6),
                    rnd(10),
                    rnd(10),
                    rnd(1000)
                ));
            }
            match rnd(4) {
                0 => parts.push(format!("\"n\":{}", rnd(u64::MAX >> 1) as i64 - (1 << 40))),
                1 => parts.push(format!("\"n\":{}.0", rnd(1000))),
                2 => parts.push("\"n\":null".into()),
                _ => {}
            }
            if rnd(2) == 0 {
                parts.push(format!("\"f\":{}.{}e{}", rnd(100), rnd(100), rnd(5)));
            }
            if rnd(3) > 0 {
                let items: Vec<String> = (0..rnd(4))
                    .map(|_| {
                        format!(
                            "{{\"sku\":\"SKU-{:05}\",\"qty\":{},\"price\":{}.{:02}}}",
                            rnd(5000),
                            1 + rnd(5),
                            rnd(200),
                            rnd(100)
                        )
                    })
                    .collect();
                parts.push(format!("\"items\":[{}]", items.join(",")));
            }
            if rnd(3) == 0 {
                parts.push("\"ship\":{\"city\":\"Köln\",\"zip\":\"50667\"}".into());
            }
            if rnd(5) == 0 {
                parts.push("\"unknown\":{\"a\":[true,false,null,\"s\"]}".into());
            }
            // Shuffle a little: producers do not all write keys in schema order.
            if rnd(4) == 0 && parts.len() > 1 {
                let last = parts.len() - 1;
                parts.swap(0, last);
            }
            text.push('{');
            text.push_str(&parts.join(","));
            text.push_str("}\n");
        }
        same(&text);
    }
}
