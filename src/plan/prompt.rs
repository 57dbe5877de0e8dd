//! The prompt Claude reads on stdin (SPEC §5 step 4): bootstrap prompt (fresh sessions only),
//! wake prompt, session handoff, task markdown and heartbeat prompt, joined by blank lines.
//! Ported from `@paperclipai/adapter-utils` (`renderTemplate`, `joinPromptSections`,
//! `selectPaperclipTaskMarkdown`, `renderPaperclipWakePrompt`) as `claude_local` calls them, and
//! checked against prompts the real package renders (`tests/fixtures/prompts`).
//!
//! One known difference: the JSON of an execution continuation comes out with sorted keys, where
//! Paperclip keeps the order the server wrote them in (same data, other order). External chat
//! turns follow `claude_local`, which has no native wake-comment reader, so an incomplete chat
//! batch is rendered as an ordinary wake.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{json, Value};

use super::config::Config;
use super::RunRequest;

mod chat;
mod sections;
mod wake;

use wake::{is_assignment_shaped, is_recovery_wake, render_wake_prompt, Wake, WakeOptions};

/// The prompt and its size per part, as `onMeta`'s `promptMetrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The full prompt.
    pub text: String,
    /// Characters per part: `promptChars`, `bootstrapPromptChars`, `wakePromptChars`,
    /// `sessionHandoffChars`, `taskContextChars`, `heartbeatPromptChars`.
    pub metrics: BTreeMap<String, u64>,
}

/// Builds the run's prompt. `resumed` says whether `--resume` will be passed: a resumed session
/// gets no bootstrap prompt, a compact task brief and the wake "resume delta" instead of the
/// heartbeat prompt.
pub fn build_prompt(req: &RunRequest, config: &Config, resumed: bool) -> Prompt {
    let ctx = &req.context;
    let data = template_data(req);
    let bootstrap = match &config.bootstrap_prompt_template {
        Some(t) if !resumed && !t.trim().is_empty() => render_template(t, &data).trim().to_string(),
        _ => String::new(),
    };
    let task = select_task_markdown(ctx, resumed);
    let wake_value = ctx.get("paperclipWake").unwrap_or(&Value::Null);
    let wake = render_wake_prompt(
        wake_value,
        &WakeOptions {
            resumed,
            conversation_mode: ctx.get("conversationMode") == Some(&Value::Bool(true)),
            suppress_issue_description: !task.is_empty(),
        },
    );
    let heartbeat = if (resumed && !wake.is_empty()) || is_recovery_wake(wake_value) {
        String::new()
    } else {
        render_template(&config.prompt_template, &data)
    };
    let handoff = str_at(ctx, "paperclipSessionHandoffMarkdown")
        .trim()
        .to_string();
    let text = join_sections([bootstrap.as_str(), &wake, &handoff, &task, &heartbeat]);
    let count = |s: &str| s.chars().count() as u64;
    let metrics = [
        ("promptChars", count(&text)),
        ("bootstrapPromptChars", count(&bootstrap)),
        ("wakePromptChars", count(&wake)),
        ("sessionHandoffChars", count(&handoff)),
        ("taskContextChars", count(&task)),
        ("heartbeatPromptChars", count(&heartbeat)),
    ];
    Prompt {
        text,
        metrics: metrics
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// The view templates see, as `claude_local` builds it: `agentId`, `companyId`, `runId`,
/// `company.id`, `agent.{id,companyId,name}`, `run.{id,source}` and the whole `context`.
pub fn template_data(req: &RunRequest) -> Value {
    json!({
        "agentId": req.agent.id,
        "companyId": req.agent.company_id,
        "runId": req.run_id,
        "company": {"id": req.agent.company_id},
        "agent": {"id": req.agent.id, "companyId": req.agent.company_id, "name": req.agent.name},
        "run": {"id": req.run_id, "source": "on_demand"},
        "context": req.context,
    })
}

/// Replaces every `{{ dotted.path }}` with the value at that path in `data`: strings as they
/// are, numbers and booleans as JavaScript prints them, objects and arrays as JSON, anything
/// missing (or reached through a non-object) as nothing.
pub fn render_template(template: &str, data: &Value) -> String {
    static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}").expect("placeholder pattern is valid")
    });
    PLACEHOLDER
        .replace_all(template, |caps: &Captures| {
            let mut cursor = Some(data);
            for part in caps[1].split('.') {
                cursor = cursor.filter(|c| c.is_object()).and_then(|c| c.get(part));
            }
            match cursor {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => js_number(n.as_f64().unwrap_or_default()),
                Some(other) => other.to_string(),
            }
        })
        .into_owned()
}

/// Trims each section, drops the empty ones and joins the rest with a blank line.
fn join_sections<'a>(sections: impl IntoIterator<Item = &'a str>) -> String {
    sections
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `paperclipTaskMarkdown`, or on a resumed session its compact variant, except for
/// assignment-shaped and recovery wakes, where the session may meet the issue fresh.
fn select_task_markdown(ctx: &Value, resumed: bool) -> String {
    let full = str_at(ctx, "paperclipTaskMarkdown").trim();
    if full.is_empty() || !resumed {
        return full.to_string();
    }
    let wake_value = ctx.get("paperclipWake").unwrap_or(&Value::Null);
    let Some(wake) = Wake::normalize(wake_value) else {
        return full.to_string();
    };
    if is_assignment_shaped(wake.reason.as_deref()) || wake.is_recovery() {
        return full.to_string();
    }
    let compact = str_at(ctx, "paperclipTaskMarkdownCompact").trim();
    if compact.is_empty() { full } else { compact }.to_string()
}

/// Fences untrusted multi-line text with a backtick run it cannot close.
fn fenced_text(value: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(value).max(2) + 1);
    format!("{fence}text\n{value}\n{fence}")
}

/// An inline code span whose fence is longer than any backtick run inside.
fn inline_code(value: &str) -> String {
    match longest_backtick_run(value) {
        0 => format!("`{value}`"),
        n => {
            let fence = "`".repeat(n + 1);
            format!("{fence} {value} {fence}")
        }
    }
}

fn longest_backtick_run(value: &str) -> usize {
    value.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A number as JavaScript's `String(n)` prints it, for the integral and plain cases.
fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

/// `v[key]` as a trimmed non-blank string.
fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// `v[key]` as a string, or empty.
fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The non-blank strings of an array, trimmed, at most `max`.
fn trimmed_strings(v: Option<&Value>, max: usize) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(max)
        .map(String::from)
        .collect()
}

/// JavaScript truthiness.
fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Agent;

    /// Prompts `@paperclipai/adapter-utils@2026.916.1` builds for the same inputs, the way
    /// `claude_local`'s execute does (`tests/fixtures/prompts/generate.mjs`).
    const GOLDEN: &str = include_str!("../../tests/fixtures/prompts/claude-local-golden.json");

    fn request(context: Value) -> RunRequest {
        RunRequest {
            run_id: "run-1".into(),
            agent: Agent {
                id: "agent-1".into(),
                company_id: "co-1".into(),
                name: "Ada".into(),
            },
            context,
            ..RunRequest::default()
        }
    }

    fn build_case(input: &Value) -> Prompt {
        let mut config = Config::default();
        if let Some(t) = input.get("promptTemplate").and_then(Value::as_str) {
            config.prompt_template = t.into();
        }
        config.bootstrap_prompt_template = input
            .get("bootstrap")
            .and_then(Value::as_str)
            .map(String::from);
        let resumed = input
            .get("resumed")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        build_prompt(
            &request(input.get("context").cloned().unwrap_or(json!({}))),
            &config,
            resumed,
        )
    }

    #[test]
    fn prompts_match_paperclips_own_rendering_for_every_golden_case() {
        let golden: serde_json::Map<String, Value> = serde_json::from_str(GOLDEN).unwrap();
        assert!(golden.len() > 20);
        let mismatched: Vec<String> = golden
            .iter()
            .filter_map(|(name, case)| {
                let got = build_case(&case["input"]).text;
                let expected = case["expected"].as_str().unwrap();
                (got != expected)
                    .then(|| format!("case {name}:\n--- got\n{got}\n--- expected\n{expected}"))
            })
            .collect();
        assert!(mismatched.is_empty(), "{}", mismatched.join("\n\n"));
    }

    #[test]
    fn metrics_count_characters_per_part() {
        let ctx = json!({
            "paperclipTaskMarkdown": "é".repeat(10),
            "paperclipSessionHandoffMarkdown": " hand ",
            "paperclipWake": {"issue": {"id": "i"}}
        });
        let config = Config {
            bootstrap_prompt_template: Some("boot".into()),
            ..Config::default()
        };
        let p = build_prompt(&request(ctx), &config, false);
        let m = |k: &str| p.metrics[k];
        assert_eq!(m("bootstrapPromptChars"), 4);
        assert_eq!(m("sessionHandoffChars"), 4);
        assert_eq!(m("taskContextChars"), 10);
        assert_eq!(
            m("heartbeatPromptChars"),
            "You are agent agent-1 (Ada). Continue your Paperclip work.".len() as u64
        );
        assert!(m("wakePromptChars") > 0);
        assert_eq!(m("promptChars"), p.text.chars().count() as u64);
        assert_eq!(p.metrics.len(), 6);
    }

    #[test]
    fn resumed_session_without_wake_gets_the_heartbeat_prompt_but_no_bootstrap() {
        let config = Config {
            bootstrap_prompt_template: Some("boot".into()),
            ..Config::default()
        };
        let p = build_prompt(&request(json!({})), &config, true);
        assert_eq!(
            p.text,
            "You are agent agent-1 (Ada). Continue your Paperclip work."
        );
        assert_eq!(p.metrics["bootstrapPromptChars"], 0);
    }

    #[test]
    fn huge_prompts_of_any_utf8_pass_through_intact() {
        let task = "ü🚀\u{0}{{agent.id}}".repeat(8 * 1024 * 1024 / 12);
        let p = build_prompt(
            &request(json!({"paperclipTaskMarkdown": task})),
            &Config::default(),
            false,
        );
        assert!(p.text.starts_with(task.trim()));
        assert_eq!(
            p.metrics["taskContextChars"],
            task.trim().chars().count() as u64
        );
    }

    #[test]
    fn template_renders_missing_and_non_object_paths_as_nothing() {
        let data = json!({"a": {"b": [1, 2], "s": "x", "n": 1.0}});
        assert_eq!(
            render_template("{{a.b.0}}|{{a.s.len}}|{{ a.n }}|{{nope}}|{{a.s}}", &data),
            "||1||x"
        );
        assert_eq!(
            render_template("{{ not valid! }} {{}}", &data),
            "{{ not valid! }} {{}}"
        );
    }

    #[test]
    fn fences_outgrow_the_longest_backtick_run() {
        assert_eq!(fenced_text("a ```` b"), "`````text\na ```` b\n`````");
        assert_eq!(fenced_text("plain"), "```text\nplain\n```");
        assert_eq!(inline_code("x"), "`x`");
        assert_eq!(inline_code("a``b"), "``` a``b ```");
    }
}
