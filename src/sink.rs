//! The trait through which the core reaches Paperclip's callbacks. `bridge::callbacks` implements
//! it with threadsafe functions; tests use a recording sink. Every method is awaited: a slow
//! `on_log` slows the reading of the pod's log, which is the backpressure that bounds memory.

use std::future::Future;

/// Which of Paperclip's two log streams a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Claude's stream-json and the adapter's status lines; the UI parses it line by line.
    Stdout,
    /// Adapter warnings (e.g. unusable config values).
    Stderr,
}

impl LogStream {
    /// The name Paperclip uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// A callback threw, rejected, or could not be called.
#[derive(Debug, thiserror::Error)]
#[error("{callback} callback failed: {message}")]
pub struct CallbackError {
    /// `onLog`, `onMeta`, `onDispatch`, ...
    pub callback: &'static str,
    /// What JS said.
    pub message: String,
}

/// Paperclip's side of a run.
pub trait Sink: Send + Sync {
    /// `onLog(stream, chunk)`; `chunk` ends with a newline.
    fn on_log(
        &self,
        stream: LogStream,
        chunk: String,
    ) -> impl Future<Output = Result<(), CallbackError>> + Send;
    /// `onMeta(meta)`, when the server gave one.
    fn on_meta(
        &self,
        meta: serde_json::Value,
    ) -> impl Future<Output = Result<(), CallbackError>> + Send;
    /// `onDispatch()`, when the server gave one: called right before the Job is created. There is
    /// deliberately no `onSpawn`: the Job runs out of process, and a pid reported there is one
    /// Paperclip 2026.824.1 signals on cancel (docs/paperclip-server.md).
    fn on_dispatch(&self) -> impl Future<Output = Result<(), CallbackError>> + Send;
}
