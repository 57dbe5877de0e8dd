//! Builds the results the bridge itself produces (a bad `ctx`, a panic) and turns any
//! [`RunResult`] into the JS object `execute` resolves with.

use std::any::Any;

use serde_json::Value;

use crate::error::ErrorCode;
use crate::transcript::outcome::RunResult;

/// The result for a `ctx` that cannot become a run request: nothing was started.
pub(super) fn invalid_ctx(message: String) -> RunResult {
    RunResult {
        error_code: Some(ErrorCode::ConfigInvalid.as_str().to_owned()),
        error_message: Some(message),
        ..RunResult::default()
    }
}

/// The result for a run whose future panicked. It carries no `errorCode`, so Paperclip records
/// its generic `adapter_failed`: a panic is a bug of ours, not one of the SPEC's failures.
pub(super) fn panicked(payload: Box<dyn Any + Send>) -> RunResult {
    let what = panic_message(&*payload);
    tracing::error!(panic = %what, "run panicked");
    RunResult {
        error_message: Some(format!("internal error: {what}")),
        ..RunResult::default()
    }
}

/// The message a panic carried.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The JS shape of `result` (camelCase, `None` fields left out).
///
/// # Errors
/// Never for a `RunResult`: every field is plain data, so serialising it cannot fail.
pub(super) fn to_js(result: &RunResult) -> napi::Result<Value> {
    serde_json::to_value(result)
        .map_err(|e| napi::Error::from_reason(format!("serialising the run result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ctx_is_a_config_error_with_null_exit_and_signal() {
        let js = to_js(&invalid_ctx(
            "ctx.runId must be a string, got number".into(),
        ))
        .unwrap();
        assert_eq!(
            js,
            serde_json::json!({
                "exitCode": null,
                "signal": null,
                "timedOut": false,
                "errorCode": "k8s_config_invalid",
                "errorMessage": "ctx.runId must be a string, got number",
            })
        );
    }

    #[test]
    fn a_panic_message_reaches_the_result_without_an_error_code() {
        let from_str = panicked(Box::new("boom"));
        assert_eq!(
            from_str.error_message.as_deref(),
            Some("internal error: boom")
        );
        assert_eq!(from_str.error_code, None);
        let from_string = panicked(Box::new(String::from("index out of bounds")));
        assert_eq!(
            from_string.error_message.as_deref(),
            Some("internal error: index out of bounds")
        );
        let opaque = panicked(Box::new(7_u8));
        assert_eq!(
            opaque.error_message.as_deref(),
            Some("internal error: a panic without a message")
        );
    }
}
