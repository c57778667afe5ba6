//! The OpenAPI 3.1 description of the query API, served at `/openapi.json`.

use serde_json::{Value, json};

pub fn spec() -> Value {
    let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    let info_ref = json!({ "$ref": "#/components/schemas/QueryInfo" });
    let err = json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let info_resp = json!({ "description": "the query", "content": { "application/json": { "schema": info_ref } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tributary query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "SQL over the lake, shaped like Athena's API: start a query, poll its state, page through its results, cancel it, list the history."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/queries": {
                "post": {
                    "operationId": "startQuery",
                    "summary": "Start a query; returns at once with its id (state QUEUED, or SUCCEEDED when results are reused)",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "required": ["sql"], "properties": {
                            "sql": { "type": "string", "maxLength": 262144 },
                            "parameters": { "type": "array", "items": { "type": "string" },
                                            "description": "SQL literals (42, 'DE', TRUE, NULL) bound in order to the query's ? placeholders, like Athena's ExecutionParameters" },
                            "dialect": { "type": "string", "enum": ["trino", "datafusion"],
                                         "description": "How the SQL is read: trino (Athena engine v3's semantics; the default unless [query] dialect says otherwise) or datafusion" } } } } } },
                    "responses": { "200": info_resp, "400": err, "401": err, "403": err, "413": err,
                                   "429": { "description": "Busy: [server] concurrency queries run and [server] queue wait; retry after Retry-After seconds",
                                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } }
                },
                "get": {
                    "operationId": "listQueries",
                    "summary": "The query history, newest first (kept across restarts)",
                    "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } }],
                    "responses": { "200": { "description": "queries", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "queries": { "type": "array", "items": info_ref } } } } } }, "401": err, "403": err }
                }
            },
            "/v1/queries/{id}": {
                "get": { "operationId": "getQuery", "summary": "State and statistics of a query", "parameters": [id],
                         "responses": { "200": info_resp, "404": err, "401": err, "403": err } },
                "delete": { "operationId": "cancelQuery", "summary": "Cancel a queued or running query", "parameters": [id],
                            "responses": { "200": info_resp, "404": err, "401": err, "403": err } }
            },
            "/v1/queries/{id}/results": {
                "get": {
                    "operationId": "getQueryResults",
                    "summary": "A page of results (at most 1,000 rows) with a next token; or the whole result as CSV",
                    "parameters": [
                        id,
                        { "name": "max_results", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 1000 } },
                        { "name": "next_token", "in": "query", "schema": { "type": "string" } },
                        { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "arrow", "csv"], "default": "json" } }
                    ],
                    "responses": {
                        "200": { "description": "results", "content": {
                            "application/json": { "schema": { "$ref": "#/components/schemas/ResultPage" } },
                            "application/vnd.apache.arrow.stream": { "schema": { "type": "string", "format": "binary" } },
                            "text/csv": { "schema": { "type": "string" } } } },
                        "400": err, "404": err, "409": err, "401": err, "403": err
                    }
                }
            },
            "/openapi.json": { "get": { "operationId": "openapi", "security": [], "summary": "This document",
                                        "responses": { "200": { "description": "OpenAPI document" } } } },
            "/health": { "get": { "operationId": "health", "security": [], "summary": "Liveness",
                                  "responses": { "200": { "description": "ok" } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "QueryInfo": {
                    "type": "object",
                    "required": ["query_id", "sql", "state", "submitted_at", "statistics"],
                    "properties": {
                        "query_id": { "type": "string" },
                        "sql": { "type": "string" },
                        "parameters": { "type": "array", "items": { "type": "string" } },
                        "dialect": { "type": "string", "enum": ["trino", "datafusion"] },
                        "state": { "type": "string", "enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] },
                        "submitted_at": { "type": "string", "format": "date-time" },
                        "started_at": { "type": ["string", "null"], "format": "date-time" },
                        "ended_at": { "type": ["string", "null"], "format": "date-time" },
                        "statistics": { "type": "object", "properties": {
                            "queued_ms": { "type": "integer" }, "elapsed_ms": { "type": "integer" },
                            "engine_ms": { "type": "integer", "description": "planning and running the query, without opening tables or storing results" },
                            "rows": { "type": "integer" }, "bytes_scanned": { "type": "integer" },
                            "files_scanned": { "type": "integer" }, "files_pruned": { "type": "integer" },
                            "result_bytes": { "type": "integer" } } },
                        "error": { "type": ["string", "null"] },
                        "output_location": { "type": ["string", "null"] },
                        "reused_from": { "type": ["string", "null"] }
                    }
                },
                "ResultPage": {
                    "type": "object",
                    "properties": {
                        "query_id": { "type": "string" },
                        "columns": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" }, "type": { "type": "string" } } } },
                        "rows": { "type": "array", "items": { "type": "object" } },
                        "next_token": { "type": ["string", "null"] },
                        "total_rows": { "type": "integer" }
                    }
                }
            }
        }
    })
}
