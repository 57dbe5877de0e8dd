//! The only module that imports napi: converts JS in, calls [`crate::run`] (execute) or
//! [`crate::cluster::preflight`] (testEnvironment), converts the result out. Nothing here decides
//! anything about a run; a JS value that cannot become a [`RunRequest`] resolves as a failed
//! result, and a panic resolves as one too (STYLE habit 4).
//!
//! Cancellation: every live run registers its [`CancellationToken`] under its run id;
//! [`cancel_run`] cancels it. `index.js` calls it when the server's `ctx.signal` aborts.
//!
//! [`RunRequest`]: crate::plan::RunRequest

mod callbacks;
mod cancel;
mod ctx;
mod result;

use futures::FutureExt;
use napi::bindgen_prelude::{PromiseRaw, Unknown};
use napi::{Env, Result};
use napi_derive::napi;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use tokio_util::sync::CancellationToken;

use crate::cluster::preflight;

/// Starts one run for `ctx` (Paperclip's `AdapterExecutionContext`) and resolves with its
/// `AdapterExecutionResult`. Bad `ctx` shapes, callback failures and panics all resolve with
/// `errorMessage` (and `errorCode` where the SPEC names one).
///
/// # Errors
/// Only when Node-API itself fails (the environment is shutting down).
#[napi(
    ts_args_type = "ctx: unknown",
    ts_return_type = "Promise<AdapterExecutionResult>"
)]
pub fn execute<'env>(env: &'env Env, ctx: Unknown<'env>) -> Result<PromiseRaw<'env, Value>> {
    let (req, sink) = match ctx::convert(ctx) {
        Ok(run) => run,
        Err(invalid) => {
            let failed = result::to_js(&result::invalid_ctx(invalid));
            return env.spawn_future(async move { failed });
        }
    };
    let cancel = CancellationToken::new();
    let registration = cancel::register(&req.run_id, cancel.clone());
    env.spawn_future(async move {
        let run = AssertUnwindSafe(crate::run::execute(req, &sink, cancel)).catch_unwind();
        let outcome = run.await.unwrap_or_else(result::panicked);
        // The token stays cancellable until the run has settled, then leaves the registry.
        drop(registration);
        // Dropping the sink releases the threadsafe functions, so Node may exit once the
        // promise settles.
        drop(sink);
        result::to_js(&outcome)
    })
}

/// Runs the SPEC §8 checks for `ctx.config` (Paperclip's `AdapterEnvironmentTestContext`) and
/// resolves with an `AdapterEnvironmentTestResult`. A bad `ctx` or a panic resolves as a
/// `fail` result with one error check saying why.
///
/// # Errors
/// Only when Node-API itself fails (the environment is shutting down).
#[napi(
    ts_args_type = "ctx: unknown",
    ts_return_type = "Promise<AdapterEnvironmentTestResult>"
)]
pub fn test_environment<'env>(
    env: &'env Env,
    ctx: Unknown<'env>,
) -> Result<PromiseRaw<'env, Value>> {
    let config = ctx::environment_config(ctx);
    env.spawn_future(async move {
        let report = match config {
            Ok(config) => AssertUnwindSafe(preflight::test_environment(&config))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let what = result::panic_message(&*panic);
                    failed_report("internal_error", format!("internal error: {what}"))
                }),
            Err(invalid) => failed_report("k8s_config_invalid", invalid),
        };
        serde_json::to_value(report).map_err(|e| napi::Error::from_reason(e.to_string()))
    })
}

/// A `fail` report with one error check.
fn failed_report(code: &'static str, message: String) -> preflight::Report {
    preflight::Report::new(vec![preflight::Check {
        code,
        level: preflight::Level::Error,
        message,
        hint: None,
    }])
}

/// Cancels the live run(s) registered under `run_id`; they settle with `errorCode: "cancelled"`.
/// Returns whether any live run had that id.
#[napi]
pub fn cancel_run(run_id: String) -> bool {
    cancel::cancel(&run_id)
}
