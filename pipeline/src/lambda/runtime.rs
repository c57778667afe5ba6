//! `tributary lambda`: the Lambda Runtime API loop, the `bootstrap` of a deployed function.
//! The project config, the lake's clients and the DataFusion state are made once per
//! container (its init phase); each invocation then runs through the same handlers as
//! `tributary invoke`, with the Lambda request id as correlation id.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use super::HandlerKind;
use crate::config::Config;
use crate::error::{Error, ErrorClass, Result};
use crate::lake::Lake;

/// The variables the Lambda service (or an emulator such as `cargo lambda watch`) sets; the
/// runtime client panics without them, so they are checked first.
const RUNTIME_VARS: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Serves invocations until the runtime API goes away. `kind`: the handler to use (the
/// function's `TRIBUTARY_HANDLER`), or `None` to tell each event's kind from its shape.
pub async fn serve(config: Config, lake: Lake, kind: Option<HandlerKind>) -> Result<()> {
    let missing: Vec<&str> = RUNTIME_VARS
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "`tributary lambda` serves the Lambda Runtime API, but {} {} not set: it runs inside AWS Lambda (or an emulator such as `cargo lambda watch --only-lambda-apis`); to run one event locally use `tributary invoke --event FILE`",
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" }
        )));
    }
    tracing::info!(handler = ?kind, pipelines = config.pipelines.len(), jobs = config.jobs.len(), "lambda runtime ready");
    let state = Arc::new((config, lake));
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let state = state.clone();
        async move {
            let (config, lake) = &*state;
            let id = event.context.request_id.clone();
            super::handle_with_id(config, lake, &event.payload, kind, id)
                .await
                .map_err(diagnostic)
        }
    });
    lambda_runtime::run(handler)
        .await
        .map_err(|e| Error::Internal(format!("lambda runtime: {e}")))
}

/// A failed invocation as Lambda reports it: the error class as `errorType` (so alarms and
/// retry policies can tell bad input from a passing fault), the message as `errorMessage`.
fn diagnostic(e: Error) -> Diagnostic {
    let class = match e.class() {
        ErrorClass::User => "Tributary.UserError",
        ErrorClass::Transient => "Tributary.TransientError",
        ErrorClass::Internal => "Tributary.InternalError",
    };
    tracing::error!(error = %e, class, "invocation failed");
    Diagnostic {
        error_type: class.to_string(),
        error_message: e.to_string(),
    }
}
