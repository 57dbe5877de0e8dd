//! [`JsSink`]: the [`Sink`] that reaches Paperclip's `onLog`, `onMeta` and `onDispatch` through
//! threadsafe functions. A callback may return a Promise or any plain value; a Promise is
//! awaited. A throw, a rejection or a failed call becomes a [`CallbackError`] naming the callback.

use napi::bindgen_prelude::{FnArgs, FromNapiValue, Promise, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, UnknownReturnValue};
use napi::{sys, JsValue, Status};
use serde_json::Value;
use tracing::Instrument;

use crate::sink::{CallbackError, LogStream, Sink};

/// What a callback returned: a Promise to await, or a plain value to ignore (its type does not
/// matter; Paperclip's callbacks return `Promise<void>` but hand-written ones often return
/// nothing).
pub(super) struct JsReturn(Option<Promise<UnknownReturnValue>>);

impl FromNapiValue for JsReturn {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: napi-rs hands us a live value of this env; Unknown accepts any value.
        let returned = unsafe { Unknown::from_napi_value(env, value)? };
        if returned.is_promise()? {
            // SAFETY: just checked that it is a native Promise.
            Ok(Self(Some(unsafe { Promise::from_napi_value(env, value)? })))
        } else {
            Ok(Self(None))
        }
    }
}

/// A JS callback taking `Args`, callable from any thread; not callee-handled (no error-first
/// argument) and strong, so a pending run keeps Node alive. Released when dropped, which the
/// bridge does as soon as the run settles, so it never keeps Node alive after that.
pub(super) type JsCallback<Args> = ThreadsafeFunction<Args, JsReturn, Args, Status, false>;

/// Paperclip's callbacks for one run.
pub(super) struct JsSink {
    pub(super) on_log: JsCallback<FnArgs<(String, String)>>,
    pub(super) on_meta: Option<JsCallback<Value>>,
    pub(super) on_dispatch: Option<JsCallback<()>>,
}

/// Calls `callback` with `args` and awaits what it returns, inside a span naming it.
async fn call<Args: 'static + napi::bindgen_prelude::JsValuesTupleIntoVec>(
    name: &'static str,
    callback: &JsCallback<Args>,
    args: Args,
) -> Result<(), CallbackError> {
    let failed = |e: napi::Error| CallbackError {
        callback: name,
        message: describe(&e),
    };
    async {
        // NB: `call_async` hands a synchronous throw to `napi_fatal_exception`, which kills the
        // Paperclip server; `call_async_catch` returns it as an error.
        let returned = callback.call_async_catch(args).await.map_err(failed)?;
        if let Some(promise) = returned.0 {
            promise.await.map_err(failed)?;
        }
        Ok(())
    }
    .instrument(tracing::debug_span!("callback", name))
    .await
}

/// What JS said, in words: the Error's message or the thrown string, else why there is none.
fn describe(e: &napi::Error) -> String {
    if !e.reason.is_empty() {
        return e.reason.clone();
    }
    match e.status {
        Status::PendingException | Status::GenericFailure => {
            "it threw or rejected with something other than an Error or a string, or an Error without a message"
                .to_owned()
        }
        status => format!("it could not be called ({status:?})"),
    }
}

impl Sink for JsSink {
    async fn on_log(&self, stream: LogStream, chunk: String) -> Result<(), CallbackError> {
        call(
            "onLog",
            &self.on_log,
            FnArgs::from((stream.as_str().to_owned(), chunk)),
        )
        .await
    }

    async fn on_meta(&self, meta: Value) -> Result<(), CallbackError> {
        match &self.on_meta {
            Some(on_meta) => call("onMeta", on_meta, meta).await,
            None => Ok(()),
        }
    }

    async fn on_dispatch(&self) -> Result<(), CallbackError> {
        match &self.on_dispatch {
            Some(on_dispatch) => call("onDispatch", on_dispatch, ()).await,
            None => Ok(()),
        }
    }
}
