//! KPL aggregation: a Kinesis record that starts with the magic bytes `F3 89 9A C2` holds a
//! protobuf `AggregatedRecord` followed by the MD5 of that protobuf. Its user records share
//! the Kinesis record's sequence number and are told apart by a sub-sequence number (their
//! index). A record whose digest does not match is passed through whole, as the KCL does.

use md5::{Digest, Md5};

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// The user records in `data`: `None` if `data` is not a (valid) KPL aggregate.
pub fn deaggregate(data: &[u8]) -> Option<Vec<&[u8]>> {
    let body = data.strip_prefix(&MAGIC)?;
    if body.len() < DIGEST_LEN {
        return None;
    }
    let (message, digest) = body.split_at(body.len() - DIGEST_LEN);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let mut records = Vec::new();
    // AggregatedRecord: 1 = partition key table, 2 = explicit hash key table, 3 = records.
    for field in Fields(message) {
        let (num, value) = field?;
        if num == 3 {
            let Value::Bytes(record) = value else {
                return None;
            };
            // Record: 1 = partition key index, 2 = explicit hash key index, 3 = data, 4 = tags.
            let mut data = None;
            for f in Fields(record) {
                if let (3, Value::Bytes(d)) = f? {
                    data = Some(d);
                }
            }
            records.push(data?);
        }
    }
    Some(records)
}

enum Value<'a> {
    Varint,
    Bytes(&'a [u8]),
}

/// Iterates the fields of a protobuf message (number, value); `None` ends on malformed
/// input.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.read_field();
        if field.is_none() {
            self.0 = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn read_field(&mut self) -> Option<(u64, Value<'a>)> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => {
                self.varint()?;
                Value::Varint
            }
            1 => {
                self.take(8)?;
                Value::Varint
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Varint
            }
            _ => return None,
        };
        Some((key >> 3, value))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.0.get(i)?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

/// Builds a KPL aggregate (the format the KPL writes), for the producer's `--aggregate`
/// option and for tests.
pub fn aggregate(partition_key: &str, records: &[&[u8]]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes_field(out: &mut Vec<u8>, num: u64, b: &[u8]) {
        varint(out, (num << 3) | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut msg = Vec::new();
    bytes_field(&mut msg, 1, partition_key.as_bytes());
    for r in records {
        let mut rec = Vec::new();
        varint(&mut rec, 1 << 3); // partition_key_index = 0
        varint(&mut rec, 0);
        bytes_field(&mut rec, 3, r);
        bytes_field(&mut msg, 3, &rec);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&msg);
    out.extend_from_slice(Md5::digest(&msg).as_slice());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let recs: Vec<&[u8]> = vec![b"{\"a\":1}", b"", b"{\"a\":3}"];
        let agg = aggregate("k", &recs);
        assert_eq!(deaggregate(&agg).unwrap(), recs);
        // Plain records and aggregates with a bad digest are not de-aggregated.
        assert!(deaggregate(b"{\"a\":1}").is_none());
        let mut bad = agg.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(deaggregate(&bad).is_none());
        // Truncated protobuf with a matching digest is rejected, not panicked on.
        let mut msg = vec![0x1a, 0x7f, 0x01];
        let mut t = MAGIC.to_vec();
        t.append(&mut msg.clone());
        t.extend_from_slice(Md5::digest(&msg).as_slice());
        assert!(deaggregate(&t).is_none());
        msg.clear();
    }
}
