//! The `claude` container's environment (SPEC §5 step 5), in the stated order: inherited literal
//! env, the `PAPERCLIP_*` run context (ported from `claude_local`'s `buildClaudeRuntimeConfig`),
//! `PAPERCLIP_API_KEY`, config `env`, `HOME`, then inherited `valueFrom` entries. Secret-looking
//! values are marked to travel through the per-Job Secret. Pure: the caller supplies what it read
//! from its own pod and process.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVarSource;
use serde_json::{Map, Value};

use super::RunRequest;

/// What `onMeta` shows instead of a secret value (Paperclip's own marker).
pub const REDACTED: &str = "***REDACTED***";

/// `HOME` of the CLI: the shared PVC, so `--resume` finds its sessions.
pub const CONTAINER_HOME: &str = "/paperclip";

/// Linux's `MAX_ARG_STRLEN`: the longest `NAME=value` entry `execve` accepts.
pub const MAX_ENV_ENTRY_BYTES: usize = 128 * 1024;

/// Name fragments that make a variable secret (Paperclip's `SENSITIVE_ENV_KEY`, upper-cased).
const SECRET_NAME_PARTS: [&str; 7] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "AUTHORIZATION",
    "COOKIE",
];

/// Where one variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvSource {
    /// A literal value in the pod spec; `$(` is already escaped so the kubelet keeps it verbatim.
    Literal(String),
    /// A value that goes into the per-Job Secret under `key` and reaches the container through a
    /// `secretKeyRef`. `key` is the variable name, a valid Secret data key.
    Secret {
        /// Data key in the Secret.
        key: String,
        /// The value to store.
        value: String,
    },
    /// Copied from the Paperclip pod's own `valueFrom` (opaque to us).
    Inherited(EnvVarSource),
}

/// One variable of the container.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvVar {
    /// The variable name.
    pub name: String,
    /// Its value's source.
    pub source: EnvSource,
}

/// What the caller read outside the request: the Paperclip pod's env and the API URL.
#[derive(Debug, Clone, Copy)]
pub struct EnvInput<'a> {
    /// The Paperclip pod's literal `env` entries, in order.
    pub inherited_literal: &'a [(String, String)],
    /// The Paperclip pod's `valueFrom` env entries, in order.
    pub inherited_value_from: &'a [(String, EnvVarSource)],
    /// `PAPERCLIP_API_URL` as the pod can reach it (see [`paperclip_api_url`]).
    pub api_url: &'a str,
    /// The parsed config `env`.
    pub config_env: &'a BTreeMap<String, String>,
}

/// `context.paperclipWorkspace`, each field a non-blank string or absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    /// `cwd`: the workspace directory.
    pub cwd: Option<String>,
    /// `source` (`project`, `agent_home`, ...).
    pub source: Option<String>,
    /// `strategy`
    pub strategy: Option<String>,
    /// `workspaceId`
    pub workspace_id: Option<String>,
    /// `repoUrl`
    pub repo_url: Option<String>,
    /// `repoRef`
    pub repo_ref: Option<String>,
    /// `branchName`
    pub branch: Option<String>,
    /// `worktreePath`
    pub worktree_path: Option<String>,
    /// `agentHome`
    pub agent_home: Option<String>,
}

impl Workspace {
    /// Reads `context.paperclipWorkspace`; anything missing or not a string is absent.
    pub fn from_context(context: &Value) -> Self {
        let ws = context.get("paperclipWorkspace");
        let field = |k: &str| str_field(ws, k);
        Self {
            cwd: field("cwd"),
            source: field("source"),
            strategy: field("strategy"),
            workspace_id: field("workspaceId"),
            repo_url: field("repoUrl"),
            repo_ref: field("repoRef"),
            branch: field("branchName"),
            worktree_path: field("worktreePath"),
            agent_home: field("agentHome"),
        }
    }
}

/// Builds the container env in SPEC order. A later stage replaces an earlier value of the same
/// name in place, so each name appears once.
pub fn build_env(req: &RunRequest, input: &EnvInput<'_>) -> Vec<EnvVar> {
    let mut env = Env::default();
    for (name, value) in input.inherited_literal {
        // The Paperclip pod's own spec: `$(VAR)` references there are meant, keep them.
        env.set(name, value.clone(), false);
    }
    for (name, value) in paperclip_vars(req, input.api_url) {
        env.set(name, value, true);
    }
    if let Some(token) = req.auth_token.as_deref().filter(|t| !t.is_empty()) {
        env.set("PAPERCLIP_API_KEY", token.to_string(), true);
    }
    for (name, value) in input.config_env {
        if name != "PAPERCLIP_API_KEY" {
            env.set(name, value.clone(), true);
        }
    }
    env.set("HOME", CONTAINER_HOME.to_string(), true);
    for (name, source) in input.inherited_value_from {
        if !env.vars.iter().any(|v| &v.name == name) {
            env.vars.push(EnvVar {
                name: name.clone(),
                source: EnvSource::Inherited(source.clone()),
            });
        }
    }
    env.vars
}

/// Whether a variable's value must not appear in the pod spec or in logs.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

/// The env as `onMeta` shows it: literal values, [`REDACTED`] for secrets, and a description
/// of each inherited `valueFrom`.
pub fn redacted(env: &[EnvVar]) -> Map<String, Value> {
    env.iter()
        .map(|v| {
            let shown = match &v.source {
                EnvSource::Literal(s) => s.replace("$$(", "$("),
                EnvSource::Secret { .. } => REDACTED.to_string(),
                EnvSource::Inherited(from) => describe_value_from(from),
            };
            (v.name.clone(), Value::String(shown))
        })
        .collect()
}

/// A variable's value for billing detection: `Some(Some(v))` when known, `Some(None)` when it
/// comes from an inherited `valueFrom`, `None` when unset. Fits
/// [`crate::transcript::outcome::Billing::detect`].
pub fn lookup<'a>(env: &'a [EnvVar], name: &str) -> Option<Option<&'a str>> {
    env.iter()
        .find(|v| v.name == name)
        .map(|v| match &v.source {
            EnvSource::Literal(s) => Some(s.as_str()),
            EnvSource::Secret { value, .. } => Some(value.as_str()),
            EnvSource::Inherited(_) => None,
        })
}

/// `PAPERCLIP_API_URL` as `buildPaperclipEnv` derives it from the server's environment:
/// `PAPERCLIP_API_URL`, else `PAPERCLIP_RUNTIME_API_URL`, else
/// `http://<PAPERCLIP_LISTEN_HOST|HOST|localhost>:<PAPERCLIP_LISTEN_PORT|PORT|3100>`, where an
/// unspecified host (`0.0.0.0`, `::`) becomes `localhost` and an IPv6 host gets brackets.
pub fn paperclip_api_url(var: impl Fn(&str) -> Option<String>) -> String {
    api_url(var, None)
}

/// [`paperclip_api_url`] as a Job's pod can reach it when the server runs in a pod at `pod_ip`:
/// a server listening on every interface (`0.0.0.0`, `::`, or no host) is reached at its pod IP,
/// not at `localhost`, which inside the Job's pod is the Job's pod itself.
pub fn pod_reachable_api_url(var: impl Fn(&str) -> Option<String>, pod_ip: &str) -> String {
    api_url(var, Some(pod_ip))
}

fn api_url(var: impl Fn(&str) -> Option<String>, pod_ip: Option<&str>) -> String {
    if let Some(url) = var("PAPERCLIP_API_URL").or_else(|| var("PAPERCLIP_RUNTIME_API_URL")) {
        return url;
    }
    let host = var("PAPERCLIP_LISTEN_HOST")
        .or_else(|| var("HOST"))
        .unwrap_or_default();
    let unspecified = matches!(host.trim(), "" | "0.0.0.0" | "::");
    let host = match (host.trim(), pod_ip) {
        (_, Some(ip)) if unspecified => bracket_ipv6(ip),
        ("" | "0.0.0.0" | "::", _) => "localhost".to_string(),
        (h, _) => bracket_ipv6(h),
    };
    let port = var("PAPERCLIP_LISTEN_PORT")
        .or_else(|| var("PORT"))
        .unwrap_or_else(|| "3100".into());
    format!("http://{host}:{port}")
}

/// An IPv6 literal in brackets, for a URL.
fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') && !host.ends_with(']') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The ordered env under construction.
#[derive(Default)]
struct Env {
    vars: Vec<EnvVar>,
}

impl Env {
    /// Sets `name`, replacing an earlier value in place. `escape` keeps `$(` verbatim in a
    /// literal (the kubelet would expand `$(VAR)` otherwise).
    fn set(&mut self, name: &str, value: String, escape: bool) {
        let source = if is_secret_name(name) || name == "PAPERCLIP_API_KEY" {
            EnvSource::Secret {
                key: name.to_string(),
                value,
            }
        } else if escape {
            EnvSource::Literal(value.replace("$(", "$$("))
        } else {
            EnvSource::Literal(value)
        };
        match self.vars.iter_mut().find(|v| v.name == name) {
            Some(existing) => existing.source = source,
            None => self.vars.push(EnvVar {
                name: name.to_string(),
                source,
            }),
        }
    }
}

/// The run-context variables, as `claude_local` sets them (absent values are not set).
fn paperclip_vars(req: &RunRequest, api_url: &str) -> Vec<(&'static str, String)> {
    let ctx = &req.context;
    let text = |k: &str| str_field(Some(ctx), k);
    let json_objects = |k: &str| {
        let items: Vec<&Value> = ctx
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.is_object())
            .collect();
        (!items.is_empty())
            .then(|| Value::from(items.into_iter().cloned().collect::<Vec<_>>()).to_string())
    };
    let ws = Workspace::from_context(ctx);
    let linked: Vec<&str> = ctx
        .get("issueIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    let wake = ctx
        .get("paperclipWake")
        .filter(|w| w.as_object().is_some_and(|m| !m.is_empty()));
    let work_mode = str_field(ctx.get("paperclipIssue"), "workMode")
        .or_else(|| str_field(wake.and_then(|w| w.get("issue")), "workMode"));
    let vars = [
        ("PAPERCLIP_AGENT_ID", Some(req.agent.id.clone())),
        ("PAPERCLIP_COMPANY_ID", Some(req.agent.company_id.clone())),
        ("PAPERCLIP_API_URL", Some(api_url.to_string())),
        ("PAPERCLIP_RUN_ID", Some(req.run_id.clone())),
        (
            "PAPERCLIP_TASK_ID",
            text("taskId").or_else(|| text("issueId")),
        ),
        ("PAPERCLIP_ISSUE_WORK_MODE", work_mode),
        ("PAPERCLIP_WAKE_REASON", text("wakeReason")),
        (
            "PAPERCLIP_WAKE_COMMENT_ID",
            text("wakeCommentId").or_else(|| text("commentId")),
        ),
        ("PAPERCLIP_APPROVAL_ID", text("approvalId")),
        ("PAPERCLIP_APPROVAL_STATUS", text("approvalStatus")),
        (
            "PAPERCLIP_LINKED_ISSUE_IDS",
            (!linked.is_empty()).then(|| linked.join(",")),
        ),
        ("PAPERCLIP_WAKE_PAYLOAD_JSON", wake.map(Value::to_string)),
        ("PAPERCLIP_WORKSPACE_CWD", ws.cwd),
        ("PAPERCLIP_WORKSPACE_SOURCE", ws.source),
        ("PAPERCLIP_WORKSPACE_STRATEGY", ws.strategy),
        ("PAPERCLIP_WORKSPACE_ID", ws.workspace_id),
        ("PAPERCLIP_WORKSPACE_REPO_URL", ws.repo_url),
        ("PAPERCLIP_WORKSPACE_REPO_REF", ws.repo_ref),
        ("PAPERCLIP_WORKSPACE_BRANCH", ws.branch),
        ("PAPERCLIP_WORKSPACE_WORKTREE_PATH", ws.worktree_path),
        ("AGENT_HOME", ws.agent_home),
        (
            "PAPERCLIP_WORKSPACES_JSON",
            json_objects("paperclipWorkspaces"),
        ),
        (
            "PAPERCLIP_RUNTIME_SERVICE_INTENTS_JSON",
            json_objects("paperclipRuntimeServiceIntents"),
        ),
        (
            "PAPERCLIP_RUNTIME_SERVICES_JSON",
            json_objects("paperclipRuntimeServices"),
        ),
        (
            "PAPERCLIP_RUNTIME_PRIMARY_URL",
            text("paperclipRuntimePrimaryUrl"),
        ),
    ];
    vars.into_iter()
        .filter_map(|(k, v)| Some((k, v.filter(|s| !s.is_empty())?)))
        // NB: Linux refuses to exec with one env entry over MAX_ARG_STRLEN (E2BIG), so a huge
        // JSON context would keep the container from starting. The prompt carries it anyway.
        .filter(|(k, v)| !k.ends_with("_JSON") || k.len() + 1 + v.len() < MAX_ENV_ENTRY_BYTES)
        .collect()
}

/// `obj[key]` as a trimmed, non-blank string.
fn str_field(obj: Option<&Value>, key: &str) -> Option<String> {
    obj?.get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn describe_value_from(from: &EnvVarSource) -> String {
    if let Some(s) = &from.secret_key_ref {
        format!("(from secret {}/{})", s.name, s.key)
    } else if let Some(c) = &from.config_map_key_ref {
        format!("(from configmap {}/{})", c.name, c.key)
    } else if let Some(f) = &from.field_ref {
        format!("(from field {})", f.field_path)
    } else if let Some(r) = &from.resource_field_ref {
        format!("(from resource {})", r.resource)
    } else {
        "(from valueFrom)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::config::is_env_name;
    use crate::plan::Agent;
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, SecretKeySelector};
    use serde_json::json;

    fn request() -> RunRequest {
        RunRequest {
            run_id: "run-1".into(),
            agent: Agent {
                id: "agent-1".into(),
                company_id: "co-1".into(),
                name: "Ada".into(),
            },
            auth_token: Some("tok-123".into()),
            context: json!({
                "taskId": " task-9 ", "wakeReason": "issue_commented", "commentId": "c-1",
                "approvalId": "ap-1", "approvalStatus": "approved", "issueIds": ["i-1", "", 3, "i-2"],
                "paperclipWake": {"reason": "issue_commented", "issue": {"id": "i-1", "workMode": "planning"}},
                "paperclipWorkspace": {"cwd": "/paperclip/ws", "source": "project", "workspaceId": "w-1",
                    "repoUrl": "https://git/x", "repoRef": "main", "branchName": "b", "agentHome": "/paperclip/home"},
                "paperclipWorkspaces": [{"cwd": "/a"}, "junk"],
                "paperclipRuntimePrimaryUrl": "http://svc"
            }),
            ..RunRequest::default()
        }
    }

    fn field_ref(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn value<'a>(env: &'a [EnvVar], name: &str) -> &'a EnvSource {
        &env.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("{name} not set"))
            .source
    }

    fn literal(s: &str) -> EnvSource {
        EnvSource::Literal(s.into())
    }

    fn build(
        inherited: &[(String, String)],
        value_from: &[(String, EnvVarSource)],
        config: &[(&str, &str)],
    ) -> Vec<EnvVar> {
        let config_env: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let input = EnvInput {
            inherited_literal: inherited,
            inherited_value_from: value_from,
            api_url: "http://paperclip:3100",
            config_env: &config_env,
        };
        build_env(&request(), &input)
    }

    #[test]
    fn run_context_becomes_paperclip_variables() {
        let env = build(&[], &[], &[]);
        assert_eq!(value(&env, "PAPERCLIP_AGENT_ID"), &literal("agent-1"));
        assert_eq!(value(&env, "PAPERCLIP_COMPANY_ID"), &literal("co-1"));
        assert_eq!(
            value(&env, "PAPERCLIP_API_URL"),
            &literal("http://paperclip:3100")
        );
        assert_eq!(value(&env, "PAPERCLIP_RUN_ID"), &literal("run-1"));
        assert_eq!(value(&env, "PAPERCLIP_TASK_ID"), &literal("task-9"));
        assert_eq!(
            value(&env, "PAPERCLIP_ISSUE_WORK_MODE"),
            &literal("planning")
        );
        assert_eq!(
            value(&env, "PAPERCLIP_WAKE_REASON"),
            &literal("issue_commented")
        );
        assert_eq!(value(&env, "PAPERCLIP_WAKE_COMMENT_ID"), &literal("c-1"));
        assert_eq!(value(&env, "PAPERCLIP_APPROVAL_ID"), &literal("ap-1"));
        assert_eq!(
            value(&env, "PAPERCLIP_APPROVAL_STATUS"),
            &literal("approved")
        );
        assert_eq!(
            value(&env, "PAPERCLIP_LINKED_ISSUE_IDS"),
            &literal("i-1,i-2")
        );
        assert_eq!(
            value(&env, "PAPERCLIP_WORKSPACE_CWD"),
            &literal("/paperclip/ws")
        );
        assert_eq!(value(&env, "PAPERCLIP_WORKSPACE_ID"), &literal("w-1"));
        assert_eq!(
            value(&env, "PAPERCLIP_WORKSPACE_REPO_URL"),
            &literal("https://git/x")
        );
        assert_eq!(
            value(&env, "PAPERCLIP_WORKSPACE_REPO_REF"),
            &literal("main")
        );
        assert_eq!(value(&env, "PAPERCLIP_WORKSPACE_BRANCH"), &literal("b"));
        assert_eq!(value(&env, "AGENT_HOME"), &literal("/paperclip/home"));
        assert_eq!(
            value(&env, "PAPERCLIP_WORKSPACES_JSON"),
            &literal(r#"[{"cwd":"/a"}]"#)
        );
        assert_eq!(
            value(&env, "PAPERCLIP_RUNTIME_PRIMARY_URL"),
            &literal("http://svc")
        );
        let EnvSource::Literal(wake) = value(&env, "PAPERCLIP_WAKE_PAYLOAD_JSON") else {
            panic!()
        };
        assert_eq!(
            serde_json::from_str::<Value>(wake).unwrap()["reason"],
            "issue_commented"
        );
        assert!(!env.iter().any(|v| v.name == "PAPERCLIP_WORKSPACE_STRATEGY"));
        assert!(!env
            .iter()
            .any(|v| v.name == "PAPERCLIP_RUNTIME_SERVICES_JSON"));
    }

    #[test]
    fn auth_token_and_secret_looking_values_go_through_the_secret() {
        let inherited = [
            ("ANTHROPIC_API_KEY".to_string(), "sk-1".to_string()),
            ("LOG".to_string(), "1".to_string()),
        ];
        let env = build(
            &inherited,
            &[],
            &[
                ("GITHUB_TOKEN", "gh"),
                ("db_password", "pw"),
                ("PLAIN", "x"),
            ],
        );
        let secret = |k: &str, v: &str| EnvSource::Secret {
            key: k.into(),
            value: v.into(),
        };
        assert_eq!(
            value(&env, "PAPERCLIP_API_KEY"),
            &secret("PAPERCLIP_API_KEY", "tok-123")
        );
        assert_eq!(
            value(&env, "ANTHROPIC_API_KEY"),
            &secret("ANTHROPIC_API_KEY", "sk-1")
        );
        assert_eq!(value(&env, "GITHUB_TOKEN"), &secret("GITHUB_TOKEN", "gh"));
        assert_eq!(value(&env, "db_password"), &secret("db_password", "pw"));
        assert_eq!(value(&env, "PLAIN"), &literal("x"));
        assert_eq!(value(&env, "LOG"), &literal("1"));
        for v in &env {
            if let EnvSource::Secret { key, .. } = &v.source {
                assert!(is_env_name(key));
            }
        }
    }

    #[test]
    fn config_env_overrides_inherited_and_paperclip_values_but_not_the_api_key() {
        let inherited = [
            ("PAPERCLIP_RUN_ID".to_string(), "old".to_string()),
            ("EDITOR".to_string(), "vi".to_string()),
        ];
        let env = build(
            &inherited,
            &[],
            &[
                ("PAPERCLIP_RUN_ID", "cfg"),
                ("EDITOR", "nano"),
                ("PAPERCLIP_API_KEY", "forged"),
            ],
        );
        assert_eq!(value(&env, "PAPERCLIP_RUN_ID"), &literal("cfg"));
        assert_eq!(value(&env, "EDITOR"), &literal("nano"));
        assert_eq!(
            value(&env, "PAPERCLIP_API_KEY"),
            &EnvSource::Secret {
                key: "PAPERCLIP_API_KEY".into(),
                value: "tok-123".into()
            }
        );
        assert_eq!(
            env.iter().filter(|v| v.name == "PAPERCLIP_RUN_ID").count(),
            1
        );
    }

    #[test]
    fn home_is_the_shared_volume_even_when_config_sets_it() {
        let env = build(&[("HOME".into(), "/root".into())], &[], &[("HOME", "/tmp")]);
        assert_eq!(value(&env, "HOME"), &literal("/paperclip"));
    }

    #[test]
    fn inherited_value_from_entries_come_last_and_never_override() {
        let from = [
            ("POD_NAME".to_string(), field_ref("metadata.name")),
            ("PAPERCLIP_RUN_ID".to_string(), field_ref("x")),
        ];
        let env = build(&[], &from, &[]);
        assert_eq!(env.last().unwrap().name, "POD_NAME");
        assert_eq!(
            value(&env, "POD_NAME"),
            &EnvSource::Inherited(field_ref("metadata.name"))
        );
        assert_eq!(value(&env, "PAPERCLIP_RUN_ID"), &literal("run-1"));
    }

    #[test]
    fn order_follows_the_spec_stages() {
        let env = build(
            &[("A_FIRST".into(), "1".into())],
            &[("Z_LAST".into(), field_ref("f"))],
            &[("CFG", "c")],
        );
        let pos = |n: &str| env.iter().position(|v| v.name == n).unwrap();
        assert!(pos("A_FIRST") < pos("PAPERCLIP_AGENT_ID"));
        assert!(pos("PAPERCLIP_AGENT_ID") < pos("PAPERCLIP_API_KEY"));
        assert!(pos("PAPERCLIP_API_KEY") < pos("CFG"));
        assert!(pos("CFG") < pos("HOME"));
        assert!(pos("HOME") < pos("Z_LAST"));
    }

    #[test]
    fn generated_literals_escape_kubelet_expansion_but_inherited_ones_keep_it() {
        let env = build(
            &[("PATHY".into(), "$(HOME)/bin".into())],
            &[],
            &[("MSG", "cost $(echo 5)")],
        );
        assert_eq!(value(&env, "PATHY"), &literal("$(HOME)/bin"));
        assert_eq!(value(&env, "MSG"), &literal("cost $$(echo 5)"));
        assert_eq!(redacted(&env)["MSG"], "cost $(echo 5)");
    }

    #[test]
    fn json_context_too_big_for_exec_is_left_out() {
        let mut req = request();
        req.context["paperclipWake"]["issue"]["description"] =
            Value::from("x".repeat(MAX_ENV_ENTRY_BYTES));
        let input = EnvInput {
            inherited_literal: &[],
            inherited_value_from: &[],
            api_url: "u",
            config_env: &BTreeMap::new(),
        };
        let env = build_env(&req, &input);
        assert!(!env.iter().any(|v| v.name == "PAPERCLIP_WAKE_PAYLOAD_JSON"));
        assert!(env.iter().any(|v| v.name == "PAPERCLIP_WORKSPACES_JSON"));
    }

    #[test]
    fn no_auth_token_means_no_api_key_variable() {
        let mut req = request();
        req.auth_token = None;
        let input = EnvInput {
            inherited_literal: &[],
            inherited_value_from: &[],
            api_url: "u",
            config_env: &BTreeMap::new(),
        };
        assert!(!build_env(&req, &input)
            .iter()
            .any(|v| v.name == "PAPERCLIP_API_KEY"));
    }

    #[test]
    fn redacted_view_hides_secrets_and_describes_value_from() {
        let secret_ref = EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: "s".into(),
                key: "k".into(),
                optional: None,
            }),
            ..Default::default()
        };
        let env = build(
            &[],
            &[("FROM_SECRET".into(), secret_ref)],
            &[("GITHUB_TOKEN", "gh")],
        );
        let shown = redacted(&env);
        assert_eq!(shown["PAPERCLIP_API_KEY"], REDACTED);
        assert_eq!(shown["GITHUB_TOKEN"], REDACTED);
        assert_eq!(shown["PAPERCLIP_AGENT_ID"], "agent-1");
        assert_eq!(shown["FROM_SECRET"], "(from secret s/k)");
        assert!(!Value::Object(shown).to_string().contains("tok-123"));
    }

    #[test]
    fn lookup_tells_known_unknown_and_unset_values_apart() {
        let env = build(
            &[],
            &[("FROM".into(), field_ref("f"))],
            &[("GITHUB_TOKEN", "gh")],
        );
        assert_eq!(lookup(&env, "GITHUB_TOKEN"), Some(Some("gh")));
        assert_eq!(lookup(&env, "FROM"), Some(None));
        assert_eq!(lookup(&env, "NOPE"), None);
    }

    /// A process environment holding exactly `pairs`.
    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn api_url_follows_paperclips_derivation() {
        assert_eq!(paperclip_api_url(vars(&[])), "http://localhost:3100");
        assert_eq!(
            paperclip_api_url(vars(&[("PAPERCLIP_API_URL", "https://pc"), ("HOST", "h")])),
            "https://pc"
        );
        assert_eq!(
            paperclip_api_url(vars(&[("PAPERCLIP_RUNTIME_API_URL", "http://r")])),
            "http://r"
        );
        assert_eq!(
            paperclip_api_url(vars(&[("HOST", "0.0.0.0"), ("PORT", "8080")])),
            "http://localhost:8080"
        );
        assert_eq!(
            paperclip_api_url(vars(&[("PAPERCLIP_LISTEN_HOST", "fd00::1")])),
            "http://[fd00::1]:3100"
        );
    }

    #[test]
    fn pods_reach_a_server_listening_everywhere_at_its_pod_ip() {
        let url = |pairs, ip| pod_reachable_api_url(vars(pairs), ip);
        assert_eq!(
            url(&[("HOST", "0.0.0.0"), ("PORT", "3100")], "10.1.2.3"),
            "http://10.1.2.3:3100"
        );
        assert_eq!(url(&[], "fd00::7"), "http://[fd00::7]:3100");
        assert_eq!(
            url(&[("HOST", "paperclip.svc")], "10.1.2.3"),
            "http://paperclip.svc:3100"
        );
        assert_eq!(
            url(&[("PAPERCLIP_API_URL", "https://pc")], "10.1.2.3"),
            "https://pc"
        );
    }

    #[test]
    fn workspace_reads_non_blank_strings_only() {
        let ws = Workspace::from_context(
            &json!({"paperclipWorkspace": {"cwd": " ", "repoRef": 3, "workspaceId": "w"}}),
        );
        assert_eq!(
            ws,
            Workspace {
                workspace_id: Some("w".into()),
                ..Workspace::default()
            }
        );
        assert_eq!(Workspace::from_context(&json!(null)), Workspace::default());
    }
}
