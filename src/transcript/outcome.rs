//! Folds a run's events and the container's exit into the result Paperclip records (SPEC §7).
//! Pure: [`Transcript`] keeps a bounded digest of the stream, [`Transcript::finish`] maps it.
//!
//! The classifiers (unknown session, max turns, login required, provider quota, transient
//! upstream) are ported from `@paperclipai/adapter-claude-local` (`server/parse.js`), so a
//! `claude_k8s` run fails the way a `claude_local` run of the same CLI output does.

use std::collections::VecDeque;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::event::{AssistantEvent, Event};
use super::parse::parse_line;
use crate::error::ErrorCode;
use crate::plan::env::Workspace;

/// Assistant text kept for the summary when there is no result text. The summary becomes an
/// issue comment; the end of a long answer matters most, so the oldest text goes first.
const SUMMARY_MAX_BYTES: usize = 64 * 1024;

/// Longest excerpt of an output line quoted in an error message.
const LINE_EXCERPT_CHARS: usize = 500;

/// Token counts, as Paperclip's `UsageSummary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Uncached prompt tokens, cache writes included (they are billed as input).
    pub input_tokens: u64,
    /// `output_tokens`
    pub output_tokens: u64,
    /// `cache_read_input_tokens`
    pub cached_input_tokens: u64,
}

/// What `execute` resolves with (Paperclip's `AdapterExecutionResult`). `None` fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    /// The `claude` container's exit code; `None` when it never ran or is unknown.
    pub exit_code: Option<i32>,
    /// The signal that ended the CLI (`SIGKILL` for 137, `SIGTERM` for 143), on failures only.
    pub signal: Option<String>,
    /// The run hit `timeoutSec`.
    pub timed_out: bool,
    /// Set on every failure; its absence (with exit 0 or null and no signal) means success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// One of [`ErrorCode`]'s strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `transient_upstream` or `provider_quota`, which Paperclip retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_family: Option<String>,
    /// ISO time before which a retry is pointless (a rate-limit reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_not_before: Option<String>,
    /// Machine-readable details of the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_meta: Option<Value>,
    /// Tokens of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// `per_run` when a result event gave the usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_basis: Option<String>,
    /// Legacy session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `{sessionId, cwd, workspaceId?, repoUrl?, repoRef?}`, what the next run resumes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_params: Option<Value>,
    /// The session id, for display.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_display_id: Option<String>,
    /// `anthropic`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Who bills the tokens: `anthropic` or `aws_bedrock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biller: Option<String>,
    /// The model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `api`, `metered_api` or `subscription`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_type: Option<String>,
    /// Cost of this run in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The last `result` event, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_json: Option<Value>,
    /// The result text, else the assistant texts; posted as the agent's comment on issue runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Tell Paperclip to forget the session (max turns hit, session unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_session: Option<bool>,
}

/// Who bills the run, as `claude_local` decides it from the CLI's env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billing {
    /// `anthropic` or `aws_bedrock`.
    pub biller: String,
    /// `api`, `metered_api` or `subscription`.
    pub billing_type: String,
}

impl Default for Billing {
    /// Anthropic, billing type unknown.
    fn default() -> Self {
        Self {
            biller: "anthropic".into(),
            billing_type: "unknown".into(),
        }
    }
}

impl Billing {
    /// Bedrock (`CLAUDE_CODE_USE_BEDROCK` = 1/true, or `ANTHROPIC_BEDROCK_BASE_URL` set) is
    /// `aws_bedrock` / `metered_api`; an `ANTHROPIC_API_KEY` is `api`; else `subscription`.
    /// `lookup` gives a variable's value, `Some(None)` when it is set from elsewhere (a
    /// `valueFrom`) and its value unknown, `None` when unset.
    pub fn detect<'a>(lookup: impl Fn(&str) -> Option<Option<&'a str>>) -> Self {
        let set =
            |name: &str| lookup(name).is_some_and(|v| v.map_or(true, |s| !s.trim().is_empty()));
        let bedrock = matches!(lookup("CLAUDE_CODE_USE_BEDROCK"), Some(Some("1" | "true")))
            || set("ANTHROPIC_BEDROCK_BASE_URL");
        let (biller, billing_type) = if bedrock {
            ("aws_bedrock", "metered_api")
        } else if set("ANTHROPIC_API_KEY") {
            ("anthropic", "api")
        } else {
            ("anthropic", "subscription")
        };
        Self {
            biller: biller.into(),
            billing_type: billing_type.into(),
        }
    }
}

/// How the run ended, as the cluster side saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEnd {
    /// The `claude` container's exit code, if it terminated.
    pub exit_code: Option<i32>,
    /// The container's `terminated.reason` (`OOMKilled`, `Error`, ...).
    pub termination_reason: Option<String>,
    /// The Job hit its deadline, or the adapter waited past timeoutSec + graceSec.
    pub timed_out: bool,
    /// `timeoutSec`, for the message.
    pub timeout_sec: u64,
    /// How and when the Job was found gone, if it vanished before the run ended.
    pub job_vanished: Option<String>,
    /// The session this run resumed (`runtime`), the last resort for `sessionId`.
    pub current_session_id: Option<String>,
    /// `config.model`, the last resort for `model`.
    pub config_model: Option<String>,
    /// The container's working directory, saved with the session (`--resume` needs the same).
    pub cwd: String,
    /// `context.paperclipWorkspace`, saved with the session.
    pub workspace: Workspace,
    /// Who bills the tokens.
    pub billing: Billing,
    /// When the run ended; with it, a usage limit's "resets at 5pm (Europe/Paris)" wording
    /// becomes `retryNotBefore` (a clock time without a zone is read as UTC).
    pub now: Option<jiff::Timestamp>,
}

/// A bounded digest of one run's stream-json: only what [`Transcript::finish`] needs.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    init_seen: bool,
    init_session_id: Option<String>,
    init_model: Option<String>,
    result: Option<Value>,
    summary_texts: VecDeque<String>,
    summary_bytes: usize,
    saw_content: bool,
    last_message_empty: bool,
    api_error_text: Option<String>,
    api_error_status: Option<u64>,
    first_text_line: Option<String>,
    rate_limit_resets_at: Option<i64>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and folds one line of Claude's stdout.
    pub fn observe_line(&mut self, line: &str) {
        self.observe(parse_line(line));
    }

    /// Folds one event. Takes it by value so a result is moved, never copied.
    pub fn observe(&mut self, event: Event) {
        match event {
            Event::System(s) => {
                if s.subtype.as_deref() == Some("init") {
                    self.init_seen = true;
                    self.init_session_id = non_blank(s.session_id).or(self.init_session_id.take());
                    self.init_model = non_blank(s.model).or(self.init_model.take());
                } else if s.error_status.is_some() {
                    self.api_error_status = s.error_status;
                }
            }
            Event::Assistant(a) => self.observe_assistant(a),
            Event::User => self.saw_content = true,
            Event::Result(v) => self.result = Some(v),
            Event::RateLimitEvent(e) => {
                let info = e.rate_limit_info.unwrap_or_default();
                if info
                    .get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s != "allowed")
                {
                    self.rate_limit_resets_at = info.get("resetsAt").and_then(Value::as_i64);
                }
            }
            Event::Text(line) => {
                if self.first_text_line.is_none()
                    && !line.is_empty()
                    && !line.starts_with("[paperclip]")
                {
                    self.first_text_line = Some(excerpt(&line));
                }
            }
            Event::Unknown => {}
        }
    }

    fn observe_assistant(&mut self, event: AssistantEvent) {
        let message = event.message.unwrap_or_default();
        let synthetic = event.is_api_error_message == Some(true)
            || message.model.as_deref() == Some("<synthetic>");
        if synthetic {
            // The CLI's stand-in for a failed API call: an error, not an answer.
            let text = message
                .blocks()
                .iter()
                .find_map(|b| b.text.as_deref())
                .unwrap_or_default();
            self.api_error_text = Some(excerpt(text.trim()));
            self.last_message_empty = true;
            return;
        }
        let real = message.blocks().iter().any(|b| b.is_real());
        let output_tokens = message
            .usage
            .as_ref()
            .and_then(|u| u.output_tokens)
            .unwrap_or(0);
        self.last_message_empty = !real && message.stop_reason.is_none() && output_tokens == 0;
        self.saw_content |= real;
        for text in message.blocks().iter().filter_map(|b| b.text.as_deref()) {
            if !text.trim().is_empty() {
                self.push_summary_text(text);
            }
        }
    }

    fn push_summary_text(&mut self, text: &str) {
        let text = tail(text, SUMMARY_MAX_BYTES);
        self.summary_bytes += text.len();
        self.summary_texts.push_back(text.to_string());
        while self.summary_bytes > SUMMARY_MAX_BYTES {
            let dropped = self.summary_texts.pop_front().unwrap_or_default();
            self.summary_bytes -= dropped.len();
        }
    }

    /// Maps the digest and the run's end to Paperclip's result. Error classes are checked in
    /// SPEC §7 order: timeout, unknown session, Job deleted, empty model response, truncated,
    /// no result, failing result. A session that is unknown or broken (poisoned transcript,
    /// unprocessable image on resume) is not kept, and `clearSession` tells Paperclip to forget it.
    pub fn finish(self, end: RunEnd) -> RunResult {
        let result = self.result.as_ref();
        let text = |key: &str| {
            result
                .and_then(|r| r.get(key))
                .and_then(Value::as_str)
                .map(str::trim)
        };
        let session_id = self
            .init_session_id
            .clone()
            .or_else(|| non_blank(text("session_id").map(str::to_string)))
            .or_else(|| end.current_session_id.clone());
        let summary = text("result")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                let texts: Vec<&str> = self.summary_texts.iter().map(String::as_str).collect();
                texts.join("\n\n").trim().to_string()
            });
        let (usage, cost_usd) = result.map(usage_and_cost).unzip();
        let mut out = RunResult {
            exit_code: end.exit_code,
            timed_out: end.timed_out,
            usage,
            usage_basis: result.map(|_| "per_run".into()),
            cost_usd: cost_usd.flatten(),
            provider: Some("anthropic".into()),
            biller: Some(end.billing.biller.clone()),
            billing_type: Some(end.billing.billing_type.clone()),
            model: self
                .init_model
                .clone()
                .or_else(|| non_blank(text("model").map(str::to_string)))
                .or(end.config_model.clone()),
            summary: (!summary.is_empty()).then_some(summary),
            clear_session: result.is_some_and(is_max_turns).then_some(true),
            ..RunResult::default()
        };
        let failure = self.classify(&end);
        if let Some(f) = &failure {
            out.error_code = Some(f.code.as_str().into());
            out.error_message = Some(f.message.clone());
            out.signal = f.signal.clone();
            out.error_meta = f.meta.clone();
            if f.code == ErrorCode::SessionUnavailable {
                out.clear_session = Some(true);
            }
            out.error_family = f.family.map(String::from);
            out.retry_not_before = f.retry_not_before.map(|t| t.to_string());
        }
        let resumed_and_failed = end.current_session_id.is_some() && failure.is_some();
        let broken = result.is_some_and(|r| is_broken_session(r, resumed_and_failed));
        if broken {
            out.clear_session = Some(true);
        }
        let keep_session = !broken
            && failure
                .as_ref()
                .map_or(true, |f| f.code != ErrorCode::SessionUnavailable);
        if let Some(id) = session_id.filter(|_| keep_session) {
            out.session_params = Some(session_params(&id, &end));
            out.session_display_id = Some(id.clone());
            out.session_id = Some(id);
        }
        out.result_json = self.result;
        out
    }

    fn classify(&self, end: &RunEnd) -> Option<Failure> {
        let exit = end.exit_code.unwrap_or(0);
        if end.timed_out {
            let message = match end.timeout_sec {
                0 => "Timed out".to_string(),
                n => format!("Timed out after {n}s (timeoutSec)"),
            };
            return Some(Failure::new(ErrorCode::Timeout, message));
        }
        let Some(result) = &self.result else {
            return Some(self.classify_without_result(end));
        };
        let is_error = result
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // NB: an unknown exit code (pod already gone) must not hide a failing result.
        if (end.exit_code != Some(0) || is_error) && is_unknown_session(result) {
            let message = describe_failure(result)
                .unwrap_or_else(|| format!("Claude exited with code {exit}"));
            return Some(Failure::new(ErrorCode::SessionUnavailable, message));
        }
        let subtype = result
            .get("subtype")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let succeeded = subtype.trim().eq_ignore_ascii_case("success") && !is_error;
        if succeeded || (exit == 0 && !is_error) {
            return None;
        }
        let message =
            describe_failure(result).unwrap_or_else(|| format!("Claude exited with code {exit}"));
        let mut failure = Failure::new(ErrorCode::ClaudeRunFailed, message);
        if !is_max_turns(result) {
            self.add_family(&mut failure, Some(result), end.now);
        }
        Some(failure)
    }

    fn classify_without_result(&self, end: &RunEnd) -> Failure {
        let exit = describe_exit(end);
        let meta = {
            let mut m = Map::new();
            m.insert("exitCode".into(), json!(end.exit_code));
            for (k, v) in [
                ("terminationReason", &end.termination_reason),
                ("jobVanished", &end.job_vanished),
                ("firstOutputLine", &self.first_text_line),
                ("apiError", &self.api_error_text),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), json!(v));
                }
            }
            Some(Value::Object(m))
        };
        let mut failure = if let Some(how) = &end.job_vanished {
            Failure::new(
                ErrorCode::JobDeletedExternally,
                format!("The Job was deleted before Claude wrote a result ({how})"),
            )
        } else if self.last_message_empty {
            let message = match &self.api_error_text {
                Some(t) if !t.is_empty() => format!("Claude's model call failed without a result ({exit}): {t}"),
                _ => format!("The model returned an empty response (no content, no stop reason, zero output tokens; {exit})"),
            };
            Failure::new(ErrorCode::LlmApiError, message)
        } else if self.saw_content {
            let mut f = Failure::new(
                ErrorCode::ClaudeTruncated,
                format!(
                    "Claude stopped after producing output but before writing a result ({exit})"
                ),
            );
            f.signal = exit_signal(end.exit_code).map(str::to_string);
            f
        } else {
            let message = match (&self.first_text_line, self.init_seen) {
                (Some(line), _) => {
                    format!("Claude wrote no result ({exit}); first output line: {line}")
                }
                (None, true) => {
                    format!("Claude exited right after init ({exit}); check credentials and model")
                }
                (None, false) => format!("Claude exited without any output ({exit})"),
            };
            Failure::new(ErrorCode::ClaudeRunFailed, message)
        };
        failure.meta = meta;
        if matches!(
            failure.code,
            ErrorCode::LlmApiError | ErrorCode::ClaudeRunFailed
        ) {
            self.add_family(&mut failure, None, end.now);
        }
        failure
    }

    /// Login-required, provider-quota or transient-upstream, from the words Claude used, and
    /// when a retry makes sense: the rate-limit reset the CLI reported, else the reset time a
    /// usage-limit message names.
    fn add_family(
        &self,
        failure: &mut Failure,
        result: Option<&Value>,
        now: Option<jiff::Timestamp>,
    ) {
        let mut hay = vec![failure.message.clone()];
        if let Some(r) = result {
            hay.extend(r.get("result").and_then(Value::as_str).map(str::to_string));
            hay.extend(error_messages(r));
        }
        hay.extend(self.first_text_line.clone());
        hay.extend(self.api_error_text.clone());
        let haystack = hay.join("\n");
        let status = result
            .and_then(|r| r.get("api_error_status"))
            .and_then(Value::as_u64)
            .or(self.api_error_status);
        if LOGIN_PROMPT.is_match(&haystack) || matches!(status, Some(401 | 403)) {
            failure.meta = Some(merge_meta(
                failure.meta.take(),
                json!({"loginRequired": true}),
            ));
        } else if PROVIDER_QUOTA.is_match(&haystack) {
            failure.family = Some("provider_quota");
        } else if TRANSIENT_UPSTREAM.is_match(&haystack) || matches!(status, Some(429 | 500..=599))
        {
            failure.family = Some("transient_upstream");
        }
        if failure.family.is_some() {
            failure.retry_not_before = self
                .rate_limit_resets_at
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .or_else(|| now.and_then(|now| usage_limit_reset(&haystack, now)));
        }
    }
}

/// One failure class with its wording.
struct Failure {
    code: ErrorCode,
    message: String,
    family: Option<&'static str>,
    retry_not_before: Option<jiff::Timestamp>,
    signal: Option<String>,
    meta: Option<Value>,
}

impl Failure {
    fn new(code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message,
            family: None,
            retry_not_before: None,
            signal: None,
            meta: None,
        }
    }
}

/// `claude_local`'s login-prompt markers.
static LOGIN_PROMPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:not\s+logged\s+in|please\s+log\s+in|please\s+run\s+(?:`?claude\s+login`?|/login)|login\s+required|requires\s+login|unauthorized|authentication\s+required|invalid\s+api\s+key[\s\S]{0,120}(?:/login|claude\s+login|log\s+in)|authentication[_\s-](?:failed|error)|failed\s+to\s+authenticate|invalid\s+bearer\s+token)")
        .expect("login pattern is valid")
});

/// `claude_local`'s provider-quota markers, plus the API's "credit balance is too low".
static PROVIDER_QUOTA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:you(?:'|’)ve\s+hit\s+your\s+(?:\w+\s+)?limit|session\s+limit\s+(?:reached|exceeded)|out\s+of\s+extra\s+usage|extra\s+usage\b|claude\s+usage\s+limit\s+reached|5[-\s]?hour\s+limit\s+reached|weekly\s+limit\s+reached|usage\s+limit\s+reached|usage\s+cap\s+reached|servicequotaexceededexception|credit\s+balance\s+is\s+too\s+low)")
        .expect("quota pattern is valid")
});

/// `claude_local`'s transient-upstream markers, plus 5xx wording ("server-side issue").
static TRANSIENT_UPSTREAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:rate[-\s]?limit(?:ed)?|rate_limit_error|too\s+many\s+requests|\b429\b|overloaded(?:_error)?|server\s+overloaded|service\s+unavailable|\b50[0234]\b|\b529\b|server-side\s+issue|high\s+demand|try\s+again\s+later|temporarily\s+unavailable|throttl(?:ed|ing)|throttlingexception)")
        .expect("transient pattern is valid")
});

/// `claude_local`'s unknown-session markers.
static UNKNOWN_SESSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)no conversation found with session id|unknown session|session .* not found|not a valid UUID|invalid uuid|--resume requires a valid session|is not a UUID|does not match any session title")
        .expect("session pattern is valid")
});

/// `claude_local`'s poisoned-transcript marker.
static POISONED_SESSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)diagnostics\.previous_message_id.*starts with `msg_`")
        .expect("poisoned pattern is valid")
});

/// `claude_local`'s unprocessable-image marker.
static UNPROCESSABLE_IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)could not process image").expect("image pattern is valid"));

/// `claude_local`'s usage-limit reset wording: the clock time and an optional zone in parentheses.
static USAGE_LIMIT_RESET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:you(?:'|’)ve\s+hit\s+your\s+(?:\w+\s+)?limit|session\s+limit\s+(?:reached|exceeded)|out\s+of\s+extra\s+usage|extra\s+usage|usage\s+limit\s+reached|usage\s+cap\s+reached|5[-\s]?hour\s+limit\s+reached|weekly\s+limit\s+reached|claude\s+usage\s+limit\s+reached)[\s\S]{0,120}?\bresets?\s+(?:at\s+)?([^\n()]+?)(?:\s*\(([^)]+)\))?(?:[.!]|\n|$)")
        .expect("reset pattern is valid")
});

/// `h[:mm] am|pm`
static CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s*m\.?").expect("clock pattern is valid")
});

/// The next time after `now` that a usage-limit message says the limit resets, as
/// `extractClaudeRetryNotBefore` reads it ("resets 5pm (Europe/Paris)"). A zone that is not
/// given or not known is read as UTC.
fn usage_limit_reset(haystack: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let caps = USAGE_LIMIT_RESET.captures(haystack)?;
    let clock_text = caps
        .get(1)?
        .as_str()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let clock = CLOCK.captures(&clock_text)?;
    let hour12: i8 = clock[1].parse().ok().filter(|h| (1..=12).contains(h))?;
    let minute: i8 = clock
        .get(2)
        .map_or(Some(0), |m| m.as_str().parse().ok())
        .filter(|m| (0..=59).contains(m))?;
    let hour = hour12 % 12
        + if clock[3].eq_ignore_ascii_case("p") {
            12
        } else {
            0
        };
    let zone = caps
        .get(2)
        .map(|z| z.as_str().trim())
        .filter(|z| !z.eq_ignore_ascii_case("utc") && !z.eq_ignore_ascii_case("gmt"))
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let today = now.to_zoned(zone.clone()).date();
    [today, today.tomorrow().ok()?]
        .into_iter()
        .filter_map(|day| day.at(hour, minute, 0, 0).to_zoned(zone.clone()).ok())
        .map(|z| z.timestamp())
        .find(|t| *t > now)
}

/// The messages of `errors[]`: strings, or objects' `message` / `error` / `code`.
fn error_messages(result: &Value) -> Vec<String> {
    let Some(items) = result.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Object(o) => ["message", "error", "code"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
                .map(str::to_string)
                .or_else(|| Some(item.to_string())),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// `Claude run failed: subtype=<subtype>: <result text or first error>`, or `None` when the
/// result says neither.
fn describe_failure(result: &Value) -> Option<String> {
    let subtype = result
        .get("subtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let detail = result
        .get("result")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| error_messages(result).into_iter().next());
    let mut parts = vec!["Claude run failed".to_string()];
    if !subtype.is_empty() {
        parts.push(format!("subtype={subtype}"));
    }
    parts.extend(detail);
    (parts.len() > 1).then(|| parts.join(": "))
}

/// The result text and the `errors[]` messages.
fn result_messages(result: &Value) -> impl Iterator<Item = String> {
    let text = result
        .get("result")
        .and_then(Value::as_str)
        .map(str::to_string);
    text.into_iter().chain(error_messages(result))
}

fn is_unknown_session(result: &Value) -> bool {
    result_messages(result).any(|m| UNKNOWN_SESSION.is_match(&m))
}

/// A session no resume can use again (`claude_local` drops it): a transcript poisoned with a
/// non-`msg_` `previous_message_id`, or, on a resumed run that failed, an image the API cannot
/// process.
fn is_broken_session(result: &Value, resumed_and_failed: bool) -> bool {
    result_messages(result).any(|m| {
        POISONED_SESSION.is_match(&m) || (resumed_and_failed && UNPROCESSABLE_IMAGE.is_match(&m))
    })
}

/// `subtype: error_max_turns`, or a structured stop reason saying so.
fn is_max_turns(result: &Value) -> bool {
    let field = |k: &str| {
        result
            .get(k)
            .and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_lowercase())
    };
    field("subtype").as_deref() == Some("error_max_turns")
        || [
            "stop_reason",
            "stopReason",
            "error_code",
            "errorCode",
            "terminal_reason",
        ]
        .iter()
        .any(|k| {
            matches!(
                field(k).as_deref(),
                Some("max_turns" | "max_turns_exhausted" | "turn_limit" | "turn_limit_exhausted")
            )
        })
}

/// Usage and cost of this run. `model_usage_since_last_result` is the CLI's per-result ledger;
/// `modelUsage` and `total_cost_usd` add up the whole resumed session (a resumed run reports
/// five runs' cost in the genuine transcript 04), so they are used only when the ledger is
/// missing. Cache writes count as input, as `claude_local` counts them.
fn usage_and_cost(result: &Value) -> (Usage, Option<f64>) {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let ledger = result
        .get("model_usage_since_last_result")
        .and_then(Value::as_object)
        .filter(|m| m.values().any(Value::is_object));
    if let Some(ledger) = ledger {
        let mut usage = Usage::default();
        let mut cost = 0.0;
        for entry in ledger.values().filter(|e| e.is_object()) {
            usage.input_tokens +=
                num(entry, "inputTokens") + num(entry, "cacheCreationInputTokens");
            usage.output_tokens += num(entry, "outputTokens");
            usage.cached_input_tokens += num(entry, "cacheReadInputTokens");
            cost += entry.get("costUSD").and_then(Value::as_f64).unwrap_or(0.0);
        }
        return (usage, Some(cost));
    }
    let u = result.get("usage").cloned().unwrap_or_default();
    let usage = Usage {
        input_tokens: num(&u, "input_tokens") + num(&u, "cache_creation_input_tokens"),
        output_tokens: num(&u, "output_tokens"),
        cached_input_tokens: num(&u, "cache_read_input_tokens"),
    };
    let cost = result
        .get("total_cost_usd")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite());
    (usage, cost)
}

fn session_params(session_id: &str, end: &RunEnd) -> Value {
    let mut params = Map::new();
    params.insert("sessionId".into(), json!(session_id));
    params.insert("cwd".into(), json!(end.cwd));
    for (k, v) in [
        ("workspaceId", &end.workspace.workspace_id),
        ("repoUrl", &end.workspace.repo_url),
        ("repoRef", &end.workspace.repo_ref),
    ] {
        if let Some(v) = v {
            params.insert(k.into(), json!(v));
        }
    }
    Value::Object(params)
}

/// `exit 137: SIGKILL, OOMKilled`-style wording of how the container ended.
fn describe_exit(end: &RunEnd) -> String {
    let mut s = match end.exit_code {
        Some(code) => format!("exit {code}"),
        None => "exit code unknown".to_string(),
    };
    let causes: Vec<&str> = exit_signal(end.exit_code)
        .into_iter()
        .chain(end.termination_reason.as_deref().filter(|r| !r.is_empty()))
        .collect();
    if !causes.is_empty() {
        s.push_str(": ");
        s.push_str(&causes.join(", "));
    }
    s
}

/// The signal a shell-style exit code stands for.
fn exit_signal(exit_code: Option<i32>) -> Option<&'static str> {
    match exit_code {
        Some(137) => Some("SIGKILL"),
        Some(143) => Some("SIGTERM"),
        _ => None,
    }
}

fn merge_meta(meta: Option<Value>, extra: Value) -> Value {
    let mut m = match meta {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Value::Object(extra) = extra {
        m.extend(extra);
    }
    Value::Object(m)
}

fn non_blank(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// At most [`LINE_EXCERPT_CHARS`] characters of a line, marked when cut.
fn excerpt(line: &str) -> String {
    match line.char_indices().nth(LINE_EXCERPT_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const T01: &str = include_str!("../../tests/fixtures/transcripts/01-simple-text.stream.jsonl");
    const T02: &str =
        include_str!("../../tests/fixtures/transcripts/02-tool-use-bash-bypass.stream.jsonl");
    const T03: &str =
        include_str!("../../tests/fixtures/transcripts/03-tool-permission-denied.stream.jsonl");
    const T04: &str =
        include_str!("../../tests/fixtures/transcripts/04-resume-existing-session.stream.jsonl");
    const T05: &str =
        include_str!("../../tests/fixtures/transcripts/05-error-max-turns.stream.jsonl");
    const T06: &str =
        include_str!("../../tests/fixtures/transcripts/06-api-500-retries-then-fail.stream.jsonl");

    const INIT: &str =
        r#"{"type":"system","subtype":"init","session_id":"sess-1","model":"claude-opus-5-5"}"#;
    const TEXT: &str = r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"working on it"}],"stop_reason":null,"usage":{"output_tokens":1}},"session_id":"sess-1"}"#;
    const EMPTY: &str = r#"{"type":"assistant","message":{"id":"m1","content":[],"stop_reason":null,"usage":{"output_tokens":0}},"session_id":"sess-1"}"#;

    fn end(exit_code: i32) -> RunEnd {
        RunEnd {
            exit_code: Some(exit_code),
            cwd: "/paperclip/workspace".into(),
            config_model: Some("config-model".into()),
            billing: Billing {
                biller: "anthropic".into(),
                billing_type: "api".into(),
            },
            ..RunEnd::default()
        }
    }

    fn run(lines: &str, end: RunEnd) -> RunResult {
        let mut t = Transcript::new();
        for line in lines.lines() {
            t.observe_line(line);
        }
        t.finish(end)
    }

    fn assert_success(r: &RunResult) {
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(
            (&r.error_message, &r.error_code, &r.signal),
            (&None, &None, &None),
            "{r:?}"
        );
    }

    #[test]
    fn genuine_simple_text_run_succeeds_with_usage_session_and_summary() {
        let r = run(T01, end(0));
        assert_success(&r);
        assert_eq!(
            r.summary.as_deref(),
            Some("Hello from mock. Turn with 2 messages.")
        );
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 100,
                output_tokens: 12,
                cached_input_tokens: 0
            })
        );
        assert_eq!(r.usage_basis.as_deref(), Some("per_run"));
        assert_eq!(r.cost_usd, Some(0.00064));
        assert_eq!(
            r.session_id.as_deref(),
            Some("5c5b3b2b-60ad-48d0-85b1-41c88054bd2d")
        );
        assert_eq!(r.session_display_id, r.session_id);
        assert_eq!(
            r.session_params,
            Some(
                json!({"sessionId": "5c5b3b2b-60ad-48d0-85b1-41c88054bd2d", "cwd": "/paperclip/workspace"})
            )
        );
        assert_eq!(r.model.as_deref(), Some("claude-opus-5-5"));
        assert_eq!(
            (
                r.provider.as_deref(),
                r.biller.as_deref(),
                r.billing_type.as_deref()
            ),
            (Some("anthropic"), Some("anthropic"), Some("api"))
        );
        assert_eq!(r.result_json.as_ref().unwrap()["type"], "result");
        assert_eq!(r.clear_session, None);
    }

    #[test]
    fn genuine_tool_runs_succeed_with_the_result_text_as_summary() {
        let r = run(T02, end(0));
        assert_success(&r);
        assert_eq!(r.summary.as_deref(), Some("The tool printed: done"));
        let r = run(T03, end(0));
        assert_success(&r);
        assert!(r.summary.unwrap().contains("needs approval"));
    }

    #[test]
    fn genuine_resumed_run_reports_this_runs_cost_not_the_sessions() {
        let r = run(T04, end(0));
        assert_success(&r);
        assert_eq!(r.cost_usd, Some(0.00064));
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 100,
                output_tokens: 12,
                cached_input_tokens: 0
            })
        );
        assert_eq!(
            r.session_id.as_deref(),
            Some("3fe6086b-3f11-4ae3-9c2f-24ddfc9f0100")
        );
    }

    #[test]
    fn genuine_max_turns_run_fails_and_clears_the_session() {
        let r = run(T05, end(1));
        assert_eq!(r.error_code.as_deref(), Some("claude_run_failed"));
        assert_eq!(
            r.error_message.as_deref(),
            Some("Claude run failed: subtype=error_max_turns: Reached maximum number of turns (3)")
        );
        assert_eq!(r.clear_session, Some(true));
        assert_eq!(r.error_family, None);
        assert_eq!(r.usage_basis.as_deref(), Some("per_run"));
    }

    #[test]
    fn genuine_api_500_run_fails_as_transient_upstream() {
        let r = run(T06, end(1));
        assert_eq!(r.error_code.as_deref(), Some("claude_run_failed"));
        let msg = r.error_message.unwrap();
        assert!(
            msg.starts_with("Claude run failed: subtype=success: API Error: 500"),
            "{msg}"
        );
        assert_eq!(r.error_family.as_deref(), Some("transient_upstream"));
        assert_eq!(r.retry_not_before, None);
        assert_eq!(
            r.session_id.as_deref(),
            Some("5758017d-712a-48c5-828f-3076a6033b6f")
        );
    }

    #[test]
    fn unknown_resume_session_is_session_unavailable_and_clears_it() {
        let result = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["No conversation found with session ID: 1234"],"session_id":"new-1"}"#;
        let r = run(
            result,
            RunEnd {
                current_session_id: Some("1234".into()),
                ..end(1)
            },
        );
        assert_eq!(r.error_code.as_deref(), Some("session_unavailable"));
        assert!(r.error_message.unwrap().contains("No conversation found"));
        assert_eq!(r.clear_session, Some(true));
        assert_eq!((r.session_id, r.session_params), (None, None));
        let r = run(
            result,
            RunEnd {
                exit_code: None,
                ..end(1)
            },
        );
        assert_eq!(r.error_code.as_deref(), Some("session_unavailable"));
    }

    #[test]
    fn poisoned_session_is_dropped_and_cleared_even_on_success() {
        let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 400 diagnostics.previous_message_id: must be a string that starts with `msg_`"}"#;
        let r = run(&[INIT, result].join("\n"), end(1));
        assert_eq!(r.error_code.as_deref(), Some("claude_run_failed"));
        assert_eq!(r.clear_session, Some(true));
        assert_eq!((r.session_id, r.session_params), (None, None));
    }

    #[test]
    fn unprocessable_image_clears_a_resumed_session_only() {
        let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 400 Could not process image"}"#;
        let resumed = RunEnd {
            current_session_id: Some("sess-0".into()),
            ..end(1)
        };
        let r = run(&[INIT, result].join("\n"), resumed);
        assert_eq!((r.clear_session, r.session_id), (Some(true), None));
        let r = run(&[INIT, result].join("\n"), end(1));
        assert_eq!(
            (r.clear_session, r.session_id.as_deref()),
            (None, Some("sess-1"))
        );
    }

    #[test]
    fn timeout_wins_over_everything_and_keeps_the_session() {
        let r = run(
            T05,
            RunEnd {
                timed_out: true,
                timeout_sec: 600,
                ..end(1)
            },
        );
        assert_eq!(r.error_code.as_deref(), Some("timeout"));
        assert!(r.timed_out);
        assert_eq!(
            r.error_message.as_deref(),
            Some("Timed out after 600s (timeoutSec)")
        );
        assert!(r.session_id.is_some());
    }

    #[test]
    fn vanished_job_without_result_is_deleted_externally() {
        let lines = [INIT, TEXT].join("\n");
        let how = "Job gone (watch saw DELETED at 2026-11-21T10:00:00Z)";
        let r = run(
            &lines,
            RunEnd {
                exit_code: None,
                job_vanished: Some(how.into()),
                ..end(0)
            },
        );
        assert_eq!(r.error_code.as_deref(), Some("k8s_job_deleted_externally"));
        assert!(r.error_message.unwrap().contains(how));
        assert_eq!(r.error_meta.unwrap()["jobVanished"], how);
        assert_eq!(r.session_id.as_deref(), Some("sess-1"));
    }

    #[test]
    fn vanished_job_after_a_result_keeps_the_result_verdict() {
        let r = run(
            T01,
            RunEnd {
                job_vanished: Some("gone".into()),
                ..end(0)
            },
        );
        assert_success(&r);
    }

    #[test]
    fn empty_model_response_without_result_is_llm_api_error() {
        let lines = [INIT, EMPTY].join("\n");
        let r = run(&lines, end(1));
        assert_eq!(r.error_code.as_deref(), Some("llm_api_error"));
        assert!(r.error_message.unwrap().contains("empty response"));
        assert_eq!(r.usage_basis, None);
    }

    #[test]
    fn synthetic_api_error_without_result_is_llm_api_error_quoting_it() {
        let lines: Vec<&str> = T06
            .lines()
            .filter(|l| !l.contains(r#""type":"result""#))
            .collect();
        let r = run(&lines.join("\n"), end(1));
        assert_eq!(r.error_code.as_deref(), Some("llm_api_error"));
        assert!(r.error_message.unwrap().contains("API Error: 500"));
        assert_eq!(r.error_family.as_deref(), Some("transient_upstream"));
    }

    #[test]
    fn oom_killed_after_content_is_truncated_with_the_cause() {
        let lines = [INIT, TEXT].join("\n");
        let r = run(
            &lines,
            RunEnd {
                termination_reason: Some("OOMKilled".into()),
                ..end(137)
            },
        );
        assert_eq!(r.error_code.as_deref(), Some("claude_truncated"));
        let msg = r.error_message.unwrap();
        assert!(msg.contains("exit 137: SIGKILL, OOMKilled"), "{msg}");
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(r.summary.as_deref(), Some("working on it"));
    }

    #[test]
    fn sigterm_after_content_is_truncated_naming_sigterm() {
        let lines = [INIT, TEXT].join("\n");
        let r = run(&lines, end(143));
        assert_eq!(r.error_code.as_deref(), Some("claude_truncated"));
        assert!(r.error_message.unwrap().contains("exit 143: SIGTERM"));
        assert_eq!(r.signal.as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn garbage_without_result_names_the_first_meaningful_line() {
        let lines = "[paperclip] pod started\n\n   \nError: Invalid API key · Please run /login\n{broken json\nmore";
        let r = run(lines, end(1));
        assert_eq!(r.error_code.as_deref(), Some("claude_run_failed"));
        let msg = r.error_message.unwrap();
        assert!(
            msg.ends_with("first output line: Error: Invalid API key · Please run /login"),
            "{msg}"
        );
        assert_eq!(r.error_meta.unwrap()["loginRequired"], true);
        assert_eq!(r.error_family, None);
    }

    #[test]
    fn init_alone_says_the_cli_exited_right_after_init() {
        let r = run(INIT, end(1));
        assert_eq!(
            r.error_message.as_deref(),
            Some("Claude exited right after init (exit 1); check credentials and model")
        );
        assert_eq!(r.session_id.as_deref(), Some("sess-1"));
    }

    #[test]
    fn no_output_at_all_says_so() {
        let r = run(
            "",
            RunEnd {
                exit_code: None,
                ..end(0)
            },
        );
        assert_eq!(
            r.error_message.as_deref(),
            Some("Claude exited without any output (exit code unknown)")
        );
        assert_eq!(r.model.as_deref(), Some("config-model"));
    }

    #[test]
    fn no_result_with_exit_zero_is_still_a_failure() {
        let r = run(INIT, end(0));
        assert_eq!(r.error_code.as_deref(), Some("claude_run_failed"));
    }

    #[test]
    fn lines_after_the_result_do_not_change_it() {
        let lines = format!("{T01}\nsome trailing noise\n{TEXT}\n");
        let r = run(&lines, end(0));
        assert_success(&r);
        assert_eq!(
            r.summary.as_deref(),
            Some("Hello from mock. Turn with 2 messages.")
        );
    }

    #[test]
    fn the_last_of_two_results_wins() {
        let first = r#"{"type":"result","subtype":"success","is_error":false,"result":"first"}"#;
        let second = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"second"}"#;
        let r = run(&format!("{first}\n{second}"), end(1));
        assert_eq!(
            r.error_message.as_deref(),
            Some("Claude run failed: subtype=error_during_execution: second")
        );
        let r = run(&format!("{second}\n{first}"), end(0));
        assert_success(&r);
        assert_eq!(r.summary.as_deref(), Some("first"));
    }

    #[test]
    fn summary_falls_back_to_assistant_texts_when_the_result_has_none() {
        let result = r#"{"type":"result","subtype":"success","is_error":false,"result":""}"#;
        let r = run(&[INIT, TEXT, TEXT, result].join("\n"), end(0));
        assert_eq!(r.summary.as_deref(), Some("working on it\n\nworking on it"));
    }

    #[test]
    fn kept_assistant_text_is_bounded_and_keeps_the_end() {
        let mut t = Transcript::new();
        for i in 0..100 {
            let text = format!("{i:03}{}", "x".repeat(4096));
            let line = json!({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}});
            t.observe_line(&line.to_string());
        }
        let r = t.finish(end(1));
        let summary = r.summary.unwrap();
        assert!(summary.len() <= SUMMARY_MAX_BYTES);
        assert!(summary.contains("099x"));
        assert!(!summary.contains("000x"));
    }

    #[test]
    fn one_huge_multibyte_text_is_cut_at_a_character_boundary() {
        let text = format!("{}end", "é".repeat(SUMMARY_MAX_BYTES));
        let line =
            json!({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}});
        let r = run(&line.to_string(), end(1));
        let summary = r.summary.unwrap();
        assert!(summary.len() <= SUMMARY_MAX_BYTES && summary.ends_with("éend"));
    }

    #[test]
    fn rate_limited_result_is_transient_with_retry_time_from_the_rate_limit_event() {
        let rl = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1700000000}}"#;
        let result = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error: 429 rate_limit_error"}"#;
        let r = run(&[INIT, rl, result].join("\n"), end(1));
        assert_eq!(r.error_family.as_deref(), Some("transient_upstream"));
        assert_eq!(r.retry_not_before.as_deref(), Some("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn usage_limit_reset_time_becomes_retry_not_before() {
        let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"Claude usage limit reached. Your limit will reset at 5pm (UTC)."}"#;
        let now: jiff::Timestamp = "2026-11-21T18:30:00Z".parse().unwrap();
        let r = run(
            result,
            RunEnd {
                now: Some(now),
                ..end(1)
            },
        );
        assert_eq!(r.error_family.as_deref(), Some("provider_quota"));
        assert_eq!(r.retry_not_before.as_deref(), Some("2026-11-22T17:00:00Z"));
        let earlier: jiff::Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
        let r = run(
            result,
            RunEnd {
                now: Some(earlier),
                ..end(1)
            },
        );
        assert_eq!(r.retry_not_before.as_deref(), Some("2026-11-21T17:00:00Z"));
        assert_eq!(run(result, end(1)).retry_not_before, None);
    }

    #[test]
    fn reset_clock_reads_minutes_and_zones() {
        let now: jiff::Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let at = |text: &str| usage_limit_reset(text, now).map(|t| t.to_string());
        assert_eq!(
            at("5-hour limit reached ∙ resets 3:15am"),
            Some("2026-07-01T03:15:00Z".into())
        );
        assert_eq!(
            at("usage limit reached, resets 12pm (GMT)"),
            Some("2026-07-01T12:00:00Z".into())
        );
        assert_eq!(
            at("usage limit reached, resets 1am (Mars/Olympus)"),
            Some("2026-07-01T01:00:00Z".into())
        );
        assert_eq!(at("usage limit reached. resets at 13pm"), None);
        assert_eq!(at("resets at 5pm"), None);
    }

    #[test]
    fn usage_limit_wording_is_provider_quota() {
        let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"Claude usage limit reached. Your limit resets at 5pm"}"#;
        let r = run(result, end(1));
        assert_eq!(r.error_family.as_deref(), Some("provider_quota"));
    }

    #[test]
    fn http_401_result_is_login_required_without_a_family() {
        let result = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":401,"result":"API Error: 401 authentication_error invalid x-api-key"}"#;
        let r = run(result, end(1));
        assert_eq!(r.error_family, None);
        assert_eq!(r.error_meta.unwrap()["loginRequired"], true);
    }

    #[test]
    fn successful_result_with_nonzero_exit_still_succeeds_like_claude_local() {
        let r = run(T01, end(143));
        assert_eq!((r.error_code, r.signal), (None, None));
    }

    #[test]
    fn session_falls_back_to_result_then_to_the_resumed_one() {
        let result = r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"from-result"}"#;
        assert_eq!(
            run(result, end(0)).session_id.as_deref(),
            Some("from-result")
        );
        let r = run(
            "",
            RunEnd {
                current_session_id: Some("resumed".into()),
                ..end(1)
            },
        );
        assert_eq!(r.session_id.as_deref(), Some("resumed"));
    }

    #[test]
    fn session_params_carry_the_workspace() {
        let workspace = Workspace {
            workspace_id: Some("w".into()),
            repo_url: Some("u".into()),
            repo_ref: Some("r".into()),
            ..Workspace::default()
        };
        let r = run(
            T01,
            RunEnd {
                workspace,
                ..end(0)
            },
        );
        let p = r.session_params.unwrap();
        assert_eq!(
            (&p["workspaceId"], &p["repoUrl"], &p["repoRef"]),
            (&json!("w"), &json!("u"), &json!("r"))
        );
    }

    #[test]
    fn serialised_result_has_paperclips_shape() {
        let v = serde_json::to_value(run(T05, end(1))).unwrap();
        assert_eq!(v["exitCode"], 1);
        assert_eq!(v["signal"], Value::Null);
        assert_eq!(v["timedOut"], false);
        assert_eq!(v["errorCode"], "claude_run_failed");
        assert_eq!(v["clearSession"], true);
        assert_eq!(v["usage"]["cachedInputTokens"], 0);
        assert!(v.get("retryNotBefore").is_none());
    }

    #[test]
    fn billing_follows_claude_locals_env_rules() {
        let lookup = |pairs: &'static [(&'static str, Option<&'static str>)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
        };
        let b = Billing::detect(lookup(&[("ANTHROPIC_API_KEY", Some("sk"))]));
        assert_eq!(
            (b.biller.as_str(), b.billing_type.as_str()),
            ("anthropic", "api")
        );
        let b = Billing::detect(lookup(&[("ANTHROPIC_API_KEY", None)]));
        assert_eq!(b.billing_type, "api");
        let b = Billing::detect(lookup(&[("ANTHROPIC_API_KEY", Some(" "))]));
        assert_eq!(b.billing_type, "subscription");
        let b = Billing::detect(lookup(&[
            ("CLAUDE_CODE_USE_BEDROCK", Some("1")),
            ("ANTHROPIC_API_KEY", Some("sk")),
        ]));
        assert_eq!(
            (b.biller.as_str(), b.billing_type.as_str()),
            ("aws_bedrock", "metered_api")
        );
    }
}
