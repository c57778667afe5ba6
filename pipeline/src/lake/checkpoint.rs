//! Source positions in the Delta log. Each commit carries `txn` (application transaction)
//! actions, keyed `tributary/<pipeline>/<partition>`, that record how far each source
//! partition is consumed; a restart reads them back, so the lake is its own checkpoint
//! store and a commit's data and positions land together or not at all.
//!
//! A txn holds one i64. Byte offsets fit as they are. A Kinesis sequence number (up to 56
//! decimal digits) does not: it is stored as four 18-digit limbs under `<key>#s0..#s3`, next
//! to `<key>` = 1 (open shard) / 2 (shard ended after that record) / 3 (shard ended empty).
//! All of them change in the same commit, so they are always consistent.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use tributary_connectors::{Offset, SeqNo};

use super::{Lake, app_id};
use crate::error::{Error, Result};

const LIMBS: usize = 4;
const LIMB_DIGITS: usize = 18;
const OPEN: i64 = 1;
const CLOSED: i64 = 2;
const CLOSED_EMPTY: i64 = 3;

fn is_stream(partition: &str) -> bool {
    partition.starts_with("kinesis/")
}

/// The txn actions that record `offset` for `partition`.
pub fn offset_txns(pipeline: &str, partition: &str, offset: &Offset) -> Vec<Transaction> {
    let key = app_id(pipeline, partition);
    match offset {
        Offset::Bytes(b) => vec![Transaction::new(key, *b as i64)],
        Offset::ClosedEmpty => vec![Transaction::new(key, CLOSED_EMPTY)],
        Offset::Sequence { seq, closed } => {
            let digits = format!("{:0>width$}", seq.as_str(), width = LIMBS * LIMB_DIGITS);
            let mut v = vec![Transaction::new(
                key.clone(),
                if *closed { CLOSED } else { OPEN },
            )];
            for i in 0..LIMBS {
                let limb = digits[i * LIMB_DIGITS..(i + 1) * LIMB_DIGITS]
                    .parse::<i64>()
                    .unwrap_or(0);
                v.push(Transaction::new(format!("{key}#s{i}"), limb));
            }
            v
        }
    }
}

pub async fn txn(table: &DeltaTable, id: &str) -> Result<Option<i64>> {
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), id)
        .await?)
}

/// Committed offsets of `partitions` in `table` (partitions with none are left out).
pub async fn committed_offsets(
    table: &DeltaTable,
    pipeline: &str,
    partitions: &[String],
) -> Result<HashMap<String, Offset>> {
    let mut out = HashMap::new();
    for part in partitions {
        let key = app_id(pipeline, part);
        let Some(v) = txn(table, &key).await? else {
            continue;
        };
        let offset = if !is_stream(part) {
            Offset::Bytes(v.max(0) as u64)
        } else if v == CLOSED_EMPTY {
            Offset::ClosedEmpty
        } else {
            let mut digits = String::with_capacity(LIMBS * LIMB_DIGITS);
            for i in 0..LIMBS {
                let limb = txn(table, &format!("{key}#s{i}")).await?.unwrap_or(0);
                digits.push_str(&format!("{limb:0>LIMB_DIGITS$}"));
            }
            let seq = SeqNo::parse(&digits).ok_or_else(|| {
                Error::Internal(format!("checkpoint of {part} is not a sequence number"))
            })?;
            Offset::Sequence {
                seq,
                closed: v == CLOSED,
            }
        };
        out.insert(part.clone(), offset);
    }
    Ok(out)
}

/// A pipeline's positions as its target table records them, read fresh on every call.
pub struct LakeCheckpoints {
    pub lake: Lake,
    pub table: String,
    pub pipeline: String,
}

#[async_trait::async_trait]
impl tributary_connectors::kinesis::Checkpoints for LakeCheckpoints {
    async fn committed(
        &self,
        partitions: &[String],
    ) -> tributary_connectors::Result<HashMap<String, Offset>> {
        let wrap = |e: Error| tributary_connectors::Error::Aws {
            service: "lake",
            operation: "read positions",
            message: e.to_string(),
            transient: e.class() == crate::error::ErrorClass::Transient,
        };
        let Some(table) = self.lake.load(&self.table).await.map_err(wrap)? else {
            return Ok(HashMap::new());
        };
        committed_offsets(&table, &self.pipeline, partitions)
            .await
            .map_err(wrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_split_into_limbs() {
        let seq = SeqNo::parse("49590338271490256608559692538361571095921575989136588898").unwrap();
        let txns = offset_txns(
            "p",
            "kinesis/s/shardId-000000000001",
            &Offset::Sequence { seq, closed: true },
        );
        assert_eq!(txns.len(), 5);
        assert_eq!(txns[0].version, CLOSED);
        let digits: String = txns[1..]
            .iter()
            .map(|t| format!("{:0>18}", t.version))
            .collect();
        assert_eq!(
            digits.trim_start_matches('0'),
            "49590338271490256608559692538361571095921575989136588898"
        );
    }
}
