//! Flight SQL prepared statements, as JDBC (every query), ADBC (queries with parameters)
//! and BI tools use them: create (plan only: the result schema and the parameters' schema),
//! bind one row of parameters (DoPut), execute any number of times, close.

use std::collections::HashMap;
use std::sync::Mutex;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow_flight::IpcMessage;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{SchemaAsIpc, sql::ActionCreatePreparedStatementResult};
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use tonic::Status;

use crate::query::QueryEngine;

/// Open statements a server keeps (clients that never close theirs cannot exhaust memory).
const MAX_OPEN: usize = 10_000;

pub struct Statement {
    pub sql: String,
    /// The placeholders' types as planned (`None`: any), in order.
    pub param_types: Vec<Option<DataType>>,
    /// The bound row, once DoPut has sent one.
    pub params: Option<Vec<ScalarValue>>,
}

#[derive(Default)]
pub struct PreparedStatements {
    open: Mutex<HashMap<String, Statement>>,
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &Default::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

impl PreparedStatements {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plans `sql`: the statement's handle, result schema and parameter schema.
    pub async fn create(
        &self,
        engine: &QueryEngine,
        sql: &str,
        result_schema: impl FnOnce(arrow::datatypes::SchemaRef) -> Result<Schema, Status>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if self.lock().len() >= MAX_OPEN {
            return Err(Status::resource_exhausted(format!(
                "{MAX_OPEN} prepared statements are open: close some (ClosePreparedStatement)"
            )));
        }
        let prepared = engine.prepare(sql).await.map_err(super::flight::status)?;
        let dataset = result_schema(prepared.schema)?;
        // Unknown parameter types go out as strings: every client can send one. View types
        // (what DataFusion reads strings as) go out as plain ones, which JDBC knows too;
        // binding casts the values back.
        let params = Schema::new(
            prepared
                .params
                .iter()
                .map(|(name, t)| {
                    let t = match t {
                        None | Some(DataType::Utf8View) => DataType::Utf8,
                        Some(DataType::BinaryView) => DataType::Binary,
                        Some(t) => t.clone(),
                    };
                    Field::new(name, t, true)
                })
                .collect::<Vec<_>>(),
        );
        let handle = uuid::Uuid::new_v4().to_string();
        self.lock().insert(
            handle.clone(),
            Statement {
                sql: sql.to_string(),
                param_types: prepared.params.into_iter().map(|(_, t)| t).collect(),
                params: None,
            },
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&params)?,
        })
    }

    /// Binds the one row of parameters the client sends (each cast to its planned type).
    pub async fn bind(&self, handle: &str, data: PeekableFlightDataStream) -> Result<(), Status> {
        let types = self
            .lock()
            .get(handle)
            .map(|s| s.param_types.clone())
            .ok_or_else(|| unknown(handle))?;
        let batches: Vec<RecordBatch> =
            FlightRecordBatchStream::new_from_flight_data(data.map_err(FlightError::from))
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Err(Status::invalid_argument("no parameter values were sent"));
        };
        if rows > 1 {
            return Err(Status::unimplemented(format!(
                "{rows} rows of parameters: bind one row per execution"
            )));
        }
        let mut values = Vec::with_capacity(batch.num_columns());
        for i in 0..batch.num_columns() {
            values.push(
                ScalarValue::try_from_array(batch.column(i), 0)
                    .map_err(|e| Status::invalid_argument(format!("parameter {}: {e}", i + 1)))?,
            );
        }
        let values = crate::query::params::cast_to_planned(values, &types)
            .map_err(Status::invalid_argument)?;
        if let Some(s) = self.lock().get_mut(handle) {
            s.params = Some(values);
        }
        Ok(())
    }

    /// The statement's SQL and bound parameters, to run it.
    pub fn get(&self, handle: &str) -> Result<(String, Option<Vec<ScalarValue>>), Status> {
        let open = self.lock();
        let s = open.get(handle).ok_or_else(|| unknown(handle))?;
        if !s.param_types.is_empty() && s.params.is_none() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameters and none are bound (DoPut them first)",
                s.param_types.len()
            )));
        }
        Ok((s.sql.clone(), s.params.clone()))
    }

    pub fn close(&self, handle: &str) {
        self.lock().remove(handle);
    }
}

fn unknown(handle: &str) -> Status {
    Status::not_found(format!("no prepared statement {handle} (closed?)"))
}
