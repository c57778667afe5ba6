//! Arrow Flight SQL over the lake (arrow-flight), so ADBC, JDBC and BI tools connect: queries
//! (CommandStatementQuery → ticket → DoGet), prepared statements with `?` parameters
//! (`prepared.rs`), the catalog (catalogs, schemas, tables with
//! their Arrow schemas, table types) and server info. Calls need `authorization: Bearer
//! <token>` (or a Basic handshake whose password is the token). Queries go through the
//! HTTP API's query service: the same admission (concurrency and a bounded queue), memory
//! pool, history and result files; a ticket is a query id, and DoGet streams its result
//! file a batch at a time (nothing is held in memory between GetFlightInfo and DoGet).

use std::pin::Pin;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    Ticket,
};
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::service::{Params, QueryInfo, QueryService, State};
use crate::lake::Lake;
use crate::query::trino::Dialect;
use crate::query::{QueryEngine, QueryLimits};

/// The gRPC header a Flight SQL call names its SQL dialect in.
pub const DIALECT_HEADER: &str = "x-tributary-dialect";
const CATALOG: &str = "tributary";
const SCHEMA: &str = "lake";

pub struct FlightSql {
    service: Arc<QueryService>,
    lake: Lake,
    limits: QueryLimits,
    token: Arc<String>,
    sql_info: SqlInfoData,
    prepared: super::prepared::PreparedStatements,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

impl FlightSql {
    pub fn new(
        service: Arc<QueryService>,
        lake: Lake,
        limits: QueryLimits,
        token: String,
    ) -> Result<Self, Status> {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "Tributary");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        let sql_info = b.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self {
            service,
            lake,
            limits,
            token: Arc::new(token),
            sql_info,
            prepared: Default::default(),
        })
    }

    #[allow(clippy::result_large_err)]
    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(super::bearer);
        match given {
            None => Err(Status::unauthenticated("missing bearer token")),
            Some(t) if super::same(t.as_bytes(), self.token.as_bytes()) => Ok(()),
            Some(_) => Err(Status::permission_denied("invalid bearer token")),
        }
    }

    /// The dialect a call asks for in its `x-tributary-dialect` header (ADBC:
    /// `adbc.flight.sql.rpc.call_header.x-tributary-dialect`), else the project's.
    #[allow(clippy::result_large_err)]
    fn dialect<T>(&self, req: &Request<T>) -> Result<Dialect, Status> {
        match req.metadata().get(DIALECT_HEADER) {
            None => Ok(self.limits.dialect),
            Some(v) => v
                .to_str()
                .map_err(|_| Status::invalid_argument("x-tributary-dialect: not text"))?
                .parse()
                .map_err(Status::invalid_argument),
        }
    }

    /// Batches as DoGet's messages: compacted and cut to about 1 MB each, so that no
    /// message nears gRPC's 16 MB limit (`query::compact`).
    #[allow(clippy::result_large_err)]
    fn stream(
        schema: arrow::datatypes::SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Response<DoGetStream>, Status> {
        use crate::query::compact::{MESSAGE_BYTES, for_messages};
        let batches =
            for_messages(&batches, MESSAGE_BYTES).map_err(|e| Status::internal(e.to_string()))?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    /// Runs a query through the query service and answers with its FlightInfo: the ticket
    /// is the query id, its results wait in their file for DoGet.
    async fn run(
        &self,
        sql: &str,
        params: Params,
        dialect: Dialect,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = self
            .service
            .run_to_end(sql, params, dialect)
            .await
            .map_err(status)?;
        let info = finished(info)?;
        let file = self.service.results(&info).await.map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: info.query_id.clone().into_bytes().into(),
        };
        let flight = Self::info_for(&file.schema, ticket.as_any().encode_to_vec(), descriptor)?;
        Ok(Response::new(
            flight.into_inner().with_total_records(file.rows() as i64),
        ))
    }

    fn info_for(
        schema: &arrow::datatypes::Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

/// A query that ended as anything but SUCCEEDED, as the status that says so.
#[allow(clippy::result_large_err)]
fn finished(info: QueryInfo) -> Result<QueryInfo, Status> {
    match info.state {
        State::Succeeded => Ok(info),
        State::Cancelled => Err(Status::cancelled(format!(
            "query {} was cancelled",
            info.query_id
        ))),
        _ => {
            let msg = info.error.unwrap_or_else(|| "the query failed".into());
            // The engine's refusals (bad SQL, limits) are the caller's; the rest are ours.
            if msg.starts_with("internal error") {
                Err(Status::internal(msg))
            } else {
                Err(Status::invalid_argument(msg))
            }
        }
    }
}

pub(super) fn status(e: crate::error::Error) -> Status {
    if let crate::error::Error::Busy(m) = &e {
        return Status::resource_exhausted(m.clone());
    }
    match e.class() {
        crate::error::ErrorClass::User => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // Bearer as is, or Basic with the token as the password (for JDBC-style clients).
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = match header.strip_prefix("Basic ") {
            Some(b64) => {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.split_once(':').map(|(_, p)| p.to_string()))
                    .map(|p| super::same(p.as_bytes(), self.token.as_bytes()))
                    .unwrap_or(false)
            }
            None => self.check(&request).is_ok(),
        };
        if !ok {
            return Err(Status::unauthenticated("invalid credentials"));
        }
        let out = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        })]);
        let mut resp: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(out));
        if let Ok(v) = format!("Bearer {}", self.token).parse() {
            resp.metadata_mut().insert("authorization", v);
        }
        Ok(resp)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let dialect = self.dialect(&request)?;
        self.run(
            &query.query,
            Params::Values(vec![]),
            dialect,
            request.into_inner(),
        )
        .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.check(&request)?;
        let limits = QueryLimits {
            dialect: self.dialect(&request)?,
            ..self.limits.clone()
        };
        let engine = QueryEngine::open_with(&self.lake, &limits)
            .await
            .map_err(status)?;
        self.prepared
            .create(&engine, &query.query, |schema| {
                Ok(super::results::plain_schema(&schema).as_ref().clone())
            })
            .await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.check(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        self.prepared.bind(&handle, request.into_inner()).await?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        let (sql, params) = self.prepared.get(&handle)?;
        let dialect = self.dialect(&request)?;
        self.run(
            &sql,
            Params::Values(params.unwrap_or_default()),
            dialect,
            request.into_inner(),
        )
        .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.check(&request)?;
        self.prepared
            .close(&String::from_utf8_lossy(&query.prepared_statement_handle));
        Ok(())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let id = String::from_utf8_lossy(&ticket.statement_handle).into_owned();
        let info = self
            .service
            .get(&id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("no results for handle {id}")))?;
        let info = finished(info)?;
        let file = Arc::new(self.service.results(&info).await.map_err(status)?);
        // Read a batch at a time as the client takes them; each is at most ~1 MB.
        let batches = file
            .clone()
            .stream()
            .map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e)));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(file.schema.clone())
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.into_builder().schema();
        Self::info_for(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        let schema = b.schema();
        let batch = b.build().map_err(Status::from)?;
        Self::stream(schema, vec![batch])
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info_for(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG, SCHEMA);
        let schema = b.schema();
        let batch = b.build().map_err(Status::from)?;
        Self::stream(schema, vec![batch])
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info_for(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let engine = QueryEngine::open_with(&self.lake, &self.limits)
            .await
            .map_err(status)?;
        let mut b = query.into_builder();
        for t in engine.tables() {
            let schema = engine.table_schema(t).await.map_err(status)?;
            b.append(CATALOG, SCHEMA, t, "TABLE", &schema)
                .map_err(Status::from)?;
        }
        let schema = b.schema();
        let batch = b.build().map_err(Status::from)?;
        Self::stream(schema, vec![batch])
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "table_type",
            arrow::datatypes::DataType::Utf8,
            false,
        )]);
        Self::info_for(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("table_type", arrow::datatypes::DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::StringArray::from(vec!["TABLE"]))],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Self::stream(schema, vec![batch])
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Self::info_for(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let b = query.into_builder(&self.sql_info);
        let schema = b.schema();
        let batch = b.build().map_err(Status::from)?;
        Self::stream(schema, vec![batch])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves Flight SQL on `bind` until `shutdown` completes.
pub async fn serve(
    service: Arc<QueryService>,
    lake: Lake,
    limits: QueryLimits,
    token: String,
    bind: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::error::Result<()> {
    let svc = FlightSql::new(service, lake, limits, token)
        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| crate::error::Error::io(format!("cannot listen on {bind}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::error::Error::io("no local address", e))?;
    eprintln!("Flight SQL on grpc://{addr}");
    tonic::transport::Server::builder()
        .add_service(arrow_flight::flight_service_server::FlightServiceServer::new(svc))
        .serve_with_incoming_shutdown(tokio_stream_from(listener), shutdown)
        .await
        .map_err(|e| crate::error::Error::Internal(format!("Flight SQL server: {e}")))
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}
