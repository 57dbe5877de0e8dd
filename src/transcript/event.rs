//! Claude Code's stream-json events (SPEC §7), holding only what the result needs. Types only:
//! [`super::parse::parse_line`] turns a line into an [`Event`] and never fails.

use serde::Deserialize;
use serde_json::Value;

/// One line of Claude's output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// `system` lines: `init` (session and model), `api_retry`, `permission_denied`, ...
    System(SystemEvent),
    /// One content block of a model message.
    Assistant(AssistantEvent),
    /// Tool results. Their bodies can be huge and the result needs nothing from them, so the
    /// parser only skims the line for its type and never builds them.
    #[serde(skip_deserializing)]
    User,
    /// The run's final event; the last one wins. Kept whole, as Paperclip's `resultJson`.
    #[serde(skip_deserializing)]
    Result(Value),
    /// Rate-limit status the CLI reports between turns.
    RateLimitEvent(RateLimitEvent),
    /// A line that is not a JSON object (CLI errors on stderr, shell messages). Trimmed.
    #[serde(skip_deserializing)]
    Text(String),
    /// A JSON object of a type we do not know, without a type, or of a known type but a shape
    /// we cannot read. Passed through to the log, ignored by the result.
    #[serde(other)]
    Unknown,
}

/// `{"type":"system", ...}`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SystemEvent {
    /// `init`, `api_retry`, `permission_denied`, ...
    pub subtype: Option<String>,
    /// The session the CLI runs (on `init`).
    pub session_id: Option<String>,
    /// The model the CLI uses (on `init`).
    pub model: Option<String>,
    /// HTTP status of a failed API call (on `api_retry`).
    pub error_status: Option<u64>,
}

/// `{"type":"assistant", "message": {...}}`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AssistantEvent {
    /// The model message this block belongs to.
    pub message: Option<AssistantMessage>,
    /// The session the CLI runs.
    pub session_id: Option<String>,
    /// True on the synthetic message the CLI writes for a failed API call.
    pub is_api_error_message: Option<bool>,
}

/// `assistant.message`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AssistantMessage {
    /// `msg_...`; blocks of one API message share it.
    pub id: Option<String>,
    /// The answering model; `<synthetic>` on CLI-made messages.
    pub model: Option<String>,
    /// `text`, `thinking` and `tool_use` blocks.
    pub content: Option<Vec<ContentBlock>>,
    /// `end_turn`, `tool_use`, `max_tokens`, ... or `null` while streaming.
    pub stop_reason: Option<String>,
    /// Token counts so far.
    pub usage: Option<TokenUsage>,
}

/// One block of `message.content`; a `tool_use` input is skipped, never read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ContentBlock {
    /// `text`, `thinking`, `tool_use`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The text of a `text` block.
    pub text: Option<String>,
    /// The text of a `thinking` block.
    pub thinking: Option<String>,
}

/// `message.usage`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TokenUsage {
    /// `output_tokens`
    pub output_tokens: Option<u64>,
}

/// `{"type":"rate_limit_event", "rate_limit_info": {...}}`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RateLimitEvent {
    /// `status` (`allowed`, `allowed_warning`, `rejected`), `resetsAt` (Unix seconds),
    /// `rateLimitType`, ...
    pub rate_limit_info: Option<Value>,
}

impl AssistantMessage {
    /// The blocks, or none.
    pub fn blocks(&self) -> &[ContentBlock] {
        self.content.as_deref().unwrap_or_default()
    }
}

impl ContentBlock {
    /// Whether the model produced something in this block: non-blank text or thinking, or a
    /// tool call.
    pub fn is_real(&self) -> bool {
        let filled = |s: &Option<String>| s.as_deref().is_some_and(|t| !t.trim().is_empty());
        self.kind.as_deref() == Some("tool_use") || filled(&self.text) || filled(&self.thinking)
    }
}
