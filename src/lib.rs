//! `claude_k8s`: a Paperclip adapter that runs Claude Code as a Kubernetes Job per heartbeat.
//!
//! The pipeline reads top to bottom: [`plan`] (pure: config, ids, prompt, manifests),
//! [`cluster`] (kube I/O), [`transcript`] (pure: stream-json to result), [`run`] (the steps),
//! [`bridge`] (the only napi code). Dependencies point one way: `bridge -> run -> the rest`.

pub mod bridge;
pub mod cluster;
pub mod error;
pub mod plan;
pub mod run;
pub mod sink;
pub mod transcript;
