//! Pure planning: from what Paperclip hands `execute` to the objects we will create. No tokio, no
//! kube `Client`, no clock reads that tests cannot fix: every function here is tested inline.

pub mod config;
pub mod env;
pub mod ids;
pub mod manifest;
pub mod prompt;

use serde_json::Value;

/// The agent a run belongs to (`ctx.agent`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agent {
    /// `agent.id`
    pub id: String,
    /// `agent.companyId`
    pub company_id: String,
    /// `agent.name`
    pub name: String,
}

/// The session state Paperclip kept from the last run (`ctx.runtime`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    /// `runtime.sessionId` (legacy view).
    pub session_id: Option<String>,
    /// `runtime.sessionParams`, as serialised by our session codec.
    pub session_params: Option<Value>,
    /// `runtime.taskKey`
    pub task_key: Option<String>,
}

impl Runtime {
    /// The session to resume: `sessionParams.sessionId`, else `sessionId` (SPEC §3).
    pub fn resume_session(&self) -> Option<&str> {
        self.session_params
            .as_ref()
            .and_then(|p| p.get("sessionId"))
            .and_then(Value::as_str)
            .or(self.session_id.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// Everything `execute(ctx)` received, minus the callbacks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRequest {
    /// `ctx.runId`
    pub run_id: String,
    /// `ctx.agent`
    pub agent: Agent,
    /// `ctx.runtime`
    pub runtime: Runtime,
    /// `ctx.config`: the agent's adapterConfig, read by [`config::Config::parse`].
    pub config: Value,
    /// `ctx.context`: the wake context.
    pub context: Value,
    /// `ctx.authToken`: handed to Claude as `PAPERCLIP_API_KEY`, always through a Secret.
    pub auth_token: Option<String>,
}
