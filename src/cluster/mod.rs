//! Kubernetes I/O. Each function takes an `Api<K>` or a `Client`; none reaches Paperclip.

pub mod cleanup;
pub mod client;
pub mod guard;
pub mod job_watch;
pub mod launch;
pub mod logs;
pub mod pod_wait;
pub mod preflight;
