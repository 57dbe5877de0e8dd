//! The table of error codes a run can end with (SPEC §5–§7). Every failure a user can meet maps to
//! exactly one code here; the strings are the contract with Paperclip and with operators' alerts.

/// A failed run's `errorCode`, as Paperclip records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The agent id sanitises to nothing usable as a label value.
    AgentIdInvalid,
    /// The configuration cannot produce a Job (e.g. no image outside a pod).
    ConfigInvalid,
    /// No cluster could be reached or configured.
    ClusterUnreachable,
    /// Listing this agent's live Jobs failed or hung: fail closed.
    ConcurrencyGuardUnreachable,
    /// Another live Job of this agent blocks the run.
    ConcurrentRunBlocked,
    /// An orphan exists but its task or ours is unknown.
    OrphanTaskUnknown,
    /// An orphan of the same task runs a different session.
    OrphanSessionMismatch,
    /// The orphan to reattach to has no pod.
    PodReattachFailed,
    /// The prompt Secret could not be created.
    PromptSecretCreateFailed,
    /// The Job could not be created.
    JobCreateFailed,
    /// The pod could not be scheduled or started.
    PodScheduleFailed,
    /// The Job vanished before a result arrived.
    JobDeletedExternally,
    /// The run hit `timeoutSec` (+ `graceSec`).
    Timeout,
    /// Paperclip cancelled the run.
    Cancelled,
    /// `--resume` named a session the CLI does not know.
    SessionUnavailable,
    /// The model answered nothing at all.
    LlmApiError,
    /// The CLI stopped after real output without a result.
    ClaudeTruncated,
    /// The CLI ended with a failing result or no result.
    ClaudeRunFailed,
    /// A Paperclip callback (`onLog`, `onMeta`, `onDispatch`) threw or rejected.
    CallbackFailed,
}

impl ErrorCode {
    /// The wire string Paperclip stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentIdInvalid => "k8s_agent_id_invalid",
            Self::ConfigInvalid => "k8s_config_invalid",
            Self::ClusterUnreachable => "k8s_api_unreachable",
            Self::ConcurrencyGuardUnreachable => "k8s_concurrency_guard_unreachable",
            Self::ConcurrentRunBlocked => "k8s_concurrent_run_blocked",
            Self::OrphanTaskUnknown => "k8s_orphan_task_unknown",
            Self::OrphanSessionMismatch => "k8s_orphan_session_mismatch",
            Self::PodReattachFailed => "k8s_pod_reattach_failed",
            Self::PromptSecretCreateFailed => "k8s_prompt_secret_create_failed",
            Self::JobCreateFailed => "k8s_job_create_failed",
            Self::PodScheduleFailed => "k8s_pod_schedule_failed",
            Self::JobDeletedExternally => "k8s_job_deleted_externally",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::SessionUnavailable => "session_unavailable",
            Self::LlmApiError => "llm_api_error",
            Self::ClaudeTruncated => "claude_truncated",
            Self::ClaudeRunFailed => "claude_run_failed",
            Self::CallbackFailed => "adapter_callback_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats an error and its `source()` chain once, as `outer: inner: innermost`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
