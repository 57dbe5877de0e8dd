//! `ctx.config` read strictly (SPEC §4): every key has one typed field here, and every value that
//! was present but unusable becomes a [`ConfigWarning`] naming the key, never a silent default.
//! Pure: no I/O; the caller prints the warnings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Toleration;
use regex::Regex;
use serde_json::{Map, Value};

use super::env::MAX_ENV_ENTRY_BYTES;

/// A present-but-unusable config value, reported on stderr by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The config key, dotted for nested values (`resources.limits.cpu`).
    pub key: String,
    /// What was wrong and what is used instead.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    /// The stderr line: `[claude_k8s] config key `<key>`: <message>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[claude_k8s] config key `{}`: {}",
            self.key, self.message
        )
    }
}

/// Requests and limits of the `claude` container, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// `resources.requests.cpu`
    pub requests_cpu: String,
    /// `resources.requests.memory`
    pub requests_memory: String,
    /// `resources.limits.cpu`
    pub limits_cpu: String,
    /// `resources.limits.memory`
    pub limits_memory: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            requests_cpu: "1000m".into(),
            requests_memory: "2Gi".into(),
            limits_cpu: "4000m".into(),
            limits_memory: "8Gi".into(),
        }
    }
}

/// The adapter configuration, every field defaulted as SPEC §4 says.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--model`; `None` = the CLI's default.
    pub model: Option<String>,
    /// `--effort`; `None` = the CLI's default.
    pub effort: Option<String>,
    /// `--max-turns`; 0 = unlimited.
    pub max_turns_per_run: u32,
    /// `--dangerously-skip-permissions` (pods run unattended).
    pub dangerously_skip_permissions: bool,
    /// `--append-system-prompt-file`, fresh sessions only.
    pub instructions_file_path: Option<String>,
    /// Appended last to the CLI's argv.
    pub extra_args: Vec<String>,
    /// Extra container env; overrides inherited and `PAPERCLIP_*` values except `PAPERCLIP_API_KEY`.
    pub env: BTreeMap<String, String>,
    /// Heartbeat prompt, `{{dotted.path}}` substitution.
    pub prompt_template: String,
    /// Prepended only when no session is resumed.
    pub bootstrap_prompt_template: Option<String>,
    /// Container working dir when the workspace gives none.
    pub cwd: String,
    /// Where Jobs, pods and Secrets live; `None` = the Paperclip pod's namespace.
    pub namespace: Option<String>,
    /// Main container image; `None` = the Paperclip pod's image.
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// Kubeconfig path; `None` = in-cluster, else `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<String>,
    /// Pod service account; `None` = the namespace default.
    pub service_account_name: Option<String>,
    /// Requests and limits of the main container.
    pub resources: Resources,
    /// Extra pod node selector, valid label syntax.
    pub node_selector: BTreeMap<String, String>,
    /// Extra pod tolerations.
    pub tolerations: Vec<Toleration>,
    /// Extra Job and pod labels, reserved prefixes refused.
    pub labels: BTreeMap<String, String>,
    /// Job `ttlSecondsAfterFinished`.
    pub ttl_seconds_after_finished: u32,
    /// Keep finished Jobs for debugging.
    pub retain_jobs: bool,
    /// Reattach to a live Job of the same task and session (SPEC §6).
    pub reattach_orphaned_jobs: bool,
    /// Job `activeDeadlineSeconds`; 0 = no deadline.
    pub timeout_sec: u64,
    /// Extra wait past `timeout_sec` before the adapter gives up.
    pub grace_sec: u64,
    /// Secret that testEnvironment checks for.
    pub secret_ref: String,
    /// Run the pod in the node's network namespace (testbeds and node-local API proxies). Breaks
    /// the "restricted" Pod Security Standard, so it is off unless asked for.
    pub host_network: bool,
    /// PVC to mount at `/paperclip` when none is inherited from the Paperclip pod.
    pub pvc_name: Option<String>,
}

/// The heartbeat prompt used when `promptTemplate` is unset (SPEC §4).
pub const DEFAULT_PROMPT_TEMPLATE: &str =
    "You are agent {{agent.id}} ({{agent.name}}). Continue your Paperclip work.";

/// Label key prefixes the adapter owns; user `labels` may not set them.
const RESERVED_LABEL_PREFIXES: [&str; 3] = [
    "paperclip.io/",
    "app.kubernetes.io/",
    "batch.kubernetes.io/",
];

/// Label keys the Job controller sets on pods; a user value would break pod selection.
const RESERVED_LABEL_KEYS: [&str; 2] = ["job-name", "controller-uid"];

impl Default for Config {
    fn default() -> Self {
        Self {
            model: None,
            effort: None,
            max_turns_per_run: 0,
            dangerously_skip_permissions: true,
            instructions_file_path: None,
            extra_args: Vec::new(),
            env: BTreeMap::new(),
            prompt_template: DEFAULT_PROMPT_TEMPLATE.into(),
            bootstrap_prompt_template: None,
            cwd: "/paperclip".into(),
            namespace: None,
            image: None,
            image_pull_policy: "IfNotPresent".into(),
            kubeconfig: None,
            service_account_name: None,
            resources: Resources::default(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            labels: BTreeMap::new(),
            ttl_seconds_after_finished: 300,
            retain_jobs: false,
            reattach_orphaned_jobs: true,
            timeout_sec: 0,
            grace_sec: 60,
            secret_ref: "paperclip-secrets".into(),
            host_network: false,
            pvc_name: None,
        }
    }
}

impl Config {
    /// Reads `ctx.config`. Never fails: a value that is present but unusable keeps the default
    /// and adds a warning naming the key, the type seen and what is used instead. Absent keys,
    /// `null` and empty strings mean "unset" and warn nothing; unknown keys are ignored (the
    /// server adds its own).
    pub fn parse(raw: &Value) -> (Config, Vec<ConfigWarning>) {
        let mut config = Config::default();
        let Some(obj) = raw.as_object() else {
            let warning = ConfigWarning {
                key: "config".into(),
                message: format!(
                    "expected an object, got {}; using every default",
                    describe(raw)
                ),
            };
            return (config, vec![warning]);
        };
        let mut r = Reader {
            obj,
            warnings: Vec::new(),
        };

        config.model = r.string("model", "the CLI default");
        config.effort = r.string("effort", "the CLI default");
        config.max_turns_per_run =
            r.count("maxTurnsPerRun", config.max_turns_per_run, " (unlimited)");
        config.dangerously_skip_permissions = r.boolean(
            "dangerouslySkipPermissions",
            config.dangerously_skip_permissions,
        );
        config.instructions_file_path = r.string("instructionsFilePath", "no instructions file");
        config.extra_args = r.extra_args();
        config.env = r.env();
        if let Some(t) = r.string("promptTemplate", "the default template") {
            config.prompt_template = t;
        }
        config.bootstrap_prompt_template =
            r.string("bootstrapPromptTemplate", "no bootstrap prompt");
        if let Some(cwd) = r.string("cwd", &config.cwd) {
            if cwd.starts_with('/') {
                config.cwd = cwd;
            } else {
                let msg = format!(
                    "expected an absolute path, got {cwd:?}; using {}",
                    config.cwd
                );
                r.warn("cwd", msg);
            }
        }
        config.namespace = r.name("namespace", "the Paperclip pod's namespace", is_dns_label);
        config.image = r.string("image", "the Paperclip pod's image");
        if let Some(policy) = r.string("imagePullPolicy", &config.image_pull_policy) {
            if ["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
                config.image_pull_policy = policy;
            } else {
                let msg = format!(
                    "expected Always, IfNotPresent or Never, got {policy:?}; using {}",
                    config.image_pull_policy
                );
                r.warn("imagePullPolicy", msg);
            }
        }
        config.kubeconfig = r.string("kubeconfig", "in-cluster or $KUBECONFIG");
        config.service_account_name = r.name(
            "serviceAccountName",
            "the namespace default",
            is_dns_subdomain,
        );
        config.resources = r.resources();
        config.node_selector = r.label_map("nodeSelector", false);
        config.tolerations = r.tolerations();
        config.labels = r.label_map("labels", true);
        config.ttl_seconds_after_finished = r.count(
            "ttlSecondsAfterFinished",
            config.ttl_seconds_after_finished,
            "",
        );
        config.retain_jobs = r.boolean("retainJobs", config.retain_jobs);
        config.reattach_orphaned_jobs =
            r.boolean("reattachOrphanedJobs", config.reattach_orphaned_jobs);
        config.timeout_sec = r.count("timeoutSec", config.timeout_sec, " (no deadline)");
        config.grace_sec = r.count("graceSec", config.grace_sec, "");
        if let Some(s) = r.name("secretRef", &config.secret_ref, is_dns_subdomain) {
            config.secret_ref = s;
        }
        config.host_network = r.boolean("hostNetwork", config.host_network);
        config.pvc_name = r.name("pvcName", "no PVC (an emptyDir)", is_dns_subdomain);
        (config, r.warnings)
    }
}

/// Walks one config object, collecting warnings.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    warnings: Vec<ConfigWarning>,
}

impl<'a> Reader<'a> {
    /// The value at `key`, `null` counting as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn warn(&mut self, key: impl Into<String>, message: String) {
        self.warnings.push(ConfigWarning {
            key: key.into(),
            message,
        });
    }

    /// A non-blank string; blank strings are "unset", other types warn.
    fn string(&mut self, key: &str, instead: &str) -> Option<String> {
        let value = self.get(key)?;
        self.string_value(key, value, instead)
    }

    fn string_value(&mut self, key: &str, value: &Value, instead: &str) -> Option<String> {
        match value {
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_string()),
            other => {
                self.warn(
                    key,
                    format!(
                        "expected a string, got {}; using {instead}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    /// A string that must also pass `valid` (a Kubernetes object name).
    fn name(&mut self, key: &str, instead: &str, valid: fn(&str) -> bool) -> Option<String> {
        let s = self.string(key, instead)?;
        if valid(&s) {
            Some(s)
        } else {
            self.warn(
                key,
                format!("{s:?} is not a valid Kubernetes name; using {instead}"),
            );
            None
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let msg = format!(
                    "expected a boolean, got {}; using {default}",
                    describe(other)
                );
                self.warn(key, msg);
                default
            }
        }
    }

    /// A non-negative whole number that fits `T`; integral floats (`300.0`) count. `note`
    /// explains the default in the warning (` (unlimited)`).
    fn count<T: TryFrom<u64> + Copy + fmt::Display>(
        &mut self,
        key: &str,
        default: T,
        note: &str,
    ) -> T {
        let Some(value) = self.get(key) else {
            return default;
        };
        let whole = value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        });
        match whole.and_then(|n| T::try_from(n).ok()) {
            Some(n) => n,
            None => {
                let msg = format!(
                    "expected a non-negative whole number, got {}; using {default}{note}",
                    describe(value)
                );
                self.warn(key, msg);
                default
            }
        }
    }

    /// `extraArgs`: an array of strings, or one string split like a shell would.
    fn extra_args(&mut self) -> Vec<String> {
        const KEY: &str = "extraArgs";
        match self.get(KEY) {
            None => Vec::new(),
            Some(Value::String(s)) => shlex::split(s).unwrap_or_else(|| {
                self.warn(KEY, format!("cannot split {s:?} into arguments (unbalanced quotes?); using no extra arguments"));
                Vec::new()
            }),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        let msg = format!("expected a string, got {}; argument dropped", describe(other));
                        self.warn(format!("{KEY}[{i}]"), msg);
                        None
                    }
                })
                .collect(),
            Some(other) => {
                let msg = format!(
                    "expected an array of strings or a string, got {}; using no extra arguments",
                    describe(other)
                );
                self.warn(KEY, msg);
                Vec::new()
            }
        }
    }

    /// `env`: an object of strings or `{type: "plain", value}` bindings, a JSON string of one, or
    /// `KEY=value` lines.
    fn env(&mut self) -> BTreeMap<String, String> {
        const KEY: &str = "env";
        let mut env = BTreeMap::new();
        let Some(entries) = self.object_like(KEY, "no extra env", &['\n']) else {
            return env;
        };
        for (name, value) in entries {
            let key = format!("{KEY}.{name}");
            let text = match &value {
                Value::String(s) => s.clone(),
                Value::Object(b) if b.get("type") == Some(&Value::from("plain")) => {
                    match b.get("value") {
                        Some(Value::String(s)) => s.clone(),
                        other => {
                            let seen = other.map_or_else(|| "nothing".to_string(), describe);
                            self.warn(key, format!("a plain binding needs a string value, got {seen}; variable not set"));
                            continue;
                        }
                    }
                }
                Value::Object(b) if b.get("type").and_then(Value::as_str).is_some() => {
                    let kind = b["type"].as_str().unwrap_or_default();
                    self.warn(key, format!("a {kind:?} binding the server did not resolve to a string; variable not set"));
                    continue;
                }
                other => {
                    self.warn(
                        key,
                        format!(
                            "expected a string, got {}; variable not set",
                            describe(other)
                        ),
                    );
                    continue;
                }
            };
            if !is_env_name(&name) {
                self.warn(
                    key,
                    format!("{name:?} is not a valid environment variable name; variable not set"),
                );
            } else if name == "PAPERCLIP_API_KEY" {
                self.warn(
                    key,
                    "is reserved for the run's auth token; the config value is ignored".into(),
                );
            } else if name.len() + 1 + text.len() >= MAX_ENV_ENTRY_BYTES {
                let msg = format!(
                    "a value of {} bytes is over Linux's {} KiB limit for one variable (the container could not start); variable not set",
                    text.len(),
                    MAX_ENV_ENTRY_BYTES / 1024
                );
                self.warn(key, msg);
            } else {
                env.insert(name, text);
            }
        }
        env
    }

    /// An object, a JSON string of an object, or `key=value` entries split at `separators`
    /// (`#` comments and blank entries skipped), as ordered `(key, value)` pairs.
    fn object_like(
        &mut self,
        key: &str,
        instead: &str,
        separators: &[char],
    ) -> Option<Vec<(String, Value)>> {
        match self.get(key)? {
            Value::Object(m) => Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) if s.trim_start().starts_with('{') => match serde_json::from_str(s) {
                Ok(Value::Object(m)) => Some(m.into_iter().collect()),
                _ => {
                    self.warn(key, format!("a string starting with '{{' that is not a JSON object; using {instead}"));
                    None
                }
            },
            Value::String(s) => {
                let mut pairs = Vec::new();
                for item in s.split(separators).map(str::trim) {
                    if item.is_empty() || item.starts_with('#') {
                        continue;
                    }
                    match item.split_once('=') {
                        Some((k, v)) if !k.trim().is_empty() => {
                            pairs.push((k.trim().to_string(), Value::from(v.trim())));
                        }
                        _ => {
                            self.warn(key, format!("line {item:?} is not key=value; line skipped"))
                        }
                    }
                }
                Some(pairs)
            }
            other => {
                let msg = format!(
                    "expected an object, a JSON string or key=value lines, got {}; using {instead}",
                    describe(other)
                );
                self.warn(key, msg);
                None
            }
        }
    }

    /// `nodeSelector` / `labels`: valid label keys and values; `reserved` refuses the prefixes
    /// the adapter owns.
    fn label_map(&mut self, key: &str, reserved: bool) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(entries) = self.object_like(key, "none", &['\n', ',']) else {
            return out;
        };
        for (name, value) in entries {
            let entry_key = format!("{key}.{name}");
            let Value::String(text) = value else {
                self.warn(
                    entry_key,
                    format!(
                        "expected a string value, got {}; entry skipped",
                        describe(&value)
                    ),
                );
                continue;
            };
            if reserved && is_reserved_label(&name) {
                self.warn(
                    entry_key,
                    "is reserved for the adapter's own labels; entry skipped".into(),
                );
            } else if !is_label_key(&name) {
                self.warn(
                    entry_key,
                    format!("{name:?} is not a valid Kubernetes label key; entry skipped"),
                );
            } else if !is_label_value(&text) {
                self.warn(
                    entry_key,
                    format!("{text:?} is not a valid Kubernetes label value; entry skipped"),
                );
            } else {
                out.insert(name, text);
            }
        }
        out
    }

    /// `tolerations`: an array of Toleration objects, or a JSON string of one.
    fn tolerations(&mut self) -> Vec<Toleration> {
        const KEY: &str = "tolerations";
        let items = match self.get(KEY) {
            None => return Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(Value::String(s)) if s.trim().is_empty() => return Vec::new(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(items)) => items,
                _ => {
                    self.warn(
                        KEY,
                        "a string that is not a JSON array; using no tolerations".into(),
                    );
                    return Vec::new();
                }
            },
            Some(other) => {
                let msg = format!(
                    "expected an array or a JSON string, got {}; using no tolerations",
                    describe(other)
                );
                self.warn(KEY, msg);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("{KEY}[{i}]");
            match serde_json::from_value::<Toleration>(item) {
                Ok(t) => match toleration_problem(&t) {
                    None => out.push(t),
                    Some(problem) => self.warn(key, format!("{problem}; toleration skipped")),
                },
                Err(e) => self.warn(key, format!("not a Toleration ({e}); toleration skipped")),
            }
        }
        out
    }

    /// `resources`: nested `{requests: {cpu, memory}, limits: {...}}`, then the flat dotted keys
    /// (`resources.limits.cpu`), which win when both are given.
    fn resources(&mut self) -> Resources {
        let mut res = Resources::default();
        let nested = match self.get("resources") {
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                let msg = format!(
                    "expected an object, got {}; using the default resources",
                    describe(other)
                );
                self.warn("resources", msg);
                None
            }
            None => None,
        };
        let defaults = Resources::default();
        let slots: [(&str, &str, &mut String, &str); 4] = [
            (
                "requests",
                "cpu",
                &mut res.requests_cpu,
                &defaults.requests_cpu,
            ),
            (
                "requests",
                "memory",
                &mut res.requests_memory,
                &defaults.requests_memory,
            ),
            ("limits", "cpu", &mut res.limits_cpu, &defaults.limits_cpu),
            (
                "limits",
                "memory",
                &mut res.limits_memory,
                &defaults.limits_memory,
            ),
        ];
        for (group, name, slot, default) in slots {
            let dotted = format!("resources.{group}.{name}");
            let from_nested = nested.and_then(|m| match m.get(group) {
                Some(Value::Object(g)) => g.get(name).filter(|v| !v.is_null()),
                _ => None,
            });
            for value in [from_nested, self.get(&dotted)].into_iter().flatten() {
                match quantity(value) {
                    Some(q) => *slot = q,
                    None => self.warn(
                        dotted.as_str(),
                        format!("expected a Kubernetes quantity like \"500m\" or \"2Gi\", got {}; using {default}", describe(value)),
                    ),
                }
            }
        }
        if let Some(Value::Object(m)) = self.get("resources") {
            for group in ["requests", "limits"] {
                if let Some(g) = m.get(group).filter(|g| !g.is_null() && !g.is_object()) {
                    let msg = format!(
                        "expected an object, got {}; using the defaults",
                        describe(g)
                    );
                    self.warn(format!("resources.{group}"), msg);
                }
            }
        }
        res
    }
}

/// A Kubernetes quantity from a string or a non-negative finite number.
fn quantity(value: &Value) -> Option<String> {
    static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")
            .expect("quantity pattern is valid")
    });
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    QUANTITY.is_match(&text).then_some(text)
}

/// Why the API server would refuse this toleration, if it would.
fn toleration_problem(t: &Toleration) -> Option<String> {
    let operator = t.operator.as_deref().unwrap_or("Equal");
    if !["Equal", "Exists"].contains(&operator) {
        return Some(format!("operator {operator:?} is neither Equal nor Exists"));
    }
    if operator == "Exists" && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
        return Some("operator Exists takes no value".into());
    }
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            return Some(format!(
                "effect {effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && !is_label_key(k))
    {
        return Some("its key is not a valid label key".into());
    }
    None
}

/// How a JSON value looks, for warnings: its type and a short excerpt.
fn describe(value: &Value) -> String {
    fn excerpt(s: &str) -> String {
        let mut cut: String = s.chars().take(40).collect();
        if cut.len() < s.len() {
            cut.push('…');
        }
        cut
    }
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({:?})", excerpt(s)),
        Value::Array(a) => format!("an array of {} item(s)", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

fn is_reserved_label(key: &str) -> bool {
    RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p)) || RESERVED_LABEL_KEYS.contains(&key)
}

/// An environment variable name Kubernetes accepts, which is also a valid Secret data key.
pub fn is_env_name(name: &str) -> bool {
    static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$").expect("env name pattern is valid")
    });
    ENV_NAME.is_match(name)
}

/// A DNS-1123 label: namespaces.
pub fn is_dns_label(name: &str) -> bool {
    static LABEL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$").expect("dns label pattern is valid")
    });
    name.len() <= 63 && LABEL.is_match(name)
}

/// A DNS-1123 subdomain: most object names and label-key prefixes.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    static VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
            .expect("label value pattern is valid")
    });
    value.len() <= 63 && VALUE.is_match(value)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a non-empty label-value-like name.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.map_or(true, is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(raw: Value) -> (Config, Vec<ConfigWarning>) {
        Config::parse(&raw)
    }

    fn keys(warnings: &[ConfigWarning]) -> Vec<&str> {
        warnings.iter().map(|w| w.key.as_str()).collect()
    }

    #[test]
    fn empty_object_gives_spec_defaults_without_warnings() {
        let (config, warnings) = parse(json!({}));
        assert!(warnings.is_empty());
        assert_eq!(config, Config::default());
        assert!(config.dangerously_skip_permissions);
        assert_eq!(config.prompt_template, DEFAULT_PROMPT_TEMPLATE);
        assert_eq!(config.cwd, "/paperclip");
        assert_eq!(config.image_pull_policy, "IfNotPresent");
        assert_eq!(config.resources.requests_cpu, "1000m");
        assert_eq!(config.resources.limits_memory, "8Gi");
        assert_eq!(config.ttl_seconds_after_finished, 300);
        assert!(config.reattach_orphaned_jobs);
        assert_eq!(config.grace_sec, 60);
        assert_eq!(config.secret_ref, "paperclip-secrets");
        assert!(!config.host_network);
    }

    #[test]
    fn non_object_config_gives_defaults_and_one_warning() {
        for raw in [json!("x"), json!(3), json!([1]), json!(true), Value::Null] {
            let (config, warnings) = parse(raw);
            assert_eq!(config, Config::default());
            assert_eq!(keys(&warnings), ["config"]);
            assert!(warnings[0].message.contains("using every default"));
        }
    }

    #[test]
    fn well_typed_values_are_all_read() {
        let (config, warnings) = parse(json!({
            "model": "claude-opus-5-5", "effort": "high", "maxTurnsPerRun": 7,
            "dangerouslySkipPermissions": false, "instructionsFilePath": "/i/AGENTS.md",
            "extraArgs": ["--foo", "bar baz"], "env": {"A": "1"},
            "promptTemplate": "hi {{agent.id}}", "bootstrapPromptTemplate": "boot",
            "cwd": "/work", "namespace": "agents", "image": "img:1", "imagePullPolicy": "Never",
            "kubeconfig": "/k", "serviceAccountName": "sa", "ttlSecondsAfterFinished": 10,
            "retainJobs": true, "reattachOrphanedJobs": false, "timeoutSec": 600, "graceSec": 5,
            "secretRef": "mine", "hostNetwork": true, "pvcName": "shared",
            "nodeSelector": {"disk": "ssd"}, "labels": {"team": "a"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "paperclipServerAddedKey": {"anything": 1}
        }));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.model.as_deref(), Some("claude-opus-5-5"));
        assert_eq!(config.effort.as_deref(), Some("high"));
        assert_eq!(config.max_turns_per_run, 7);
        assert!(!config.dangerously_skip_permissions);
        assert_eq!(
            config.instructions_file_path.as_deref(),
            Some("/i/AGENTS.md")
        );
        assert_eq!(config.extra_args, ["--foo", "bar baz"]);
        assert_eq!(config.env["A"], "1");
        assert_eq!(config.prompt_template, "hi {{agent.id}}");
        assert_eq!(config.bootstrap_prompt_template.as_deref(), Some("boot"));
        assert_eq!(config.cwd, "/work");
        assert_eq!(config.namespace.as_deref(), Some("agents"));
        assert_eq!(config.image.as_deref(), Some("img:1"));
        assert_eq!(config.image_pull_policy, "Never");
        assert_eq!(config.kubeconfig.as_deref(), Some("/k"));
        assert_eq!(config.service_account_name.as_deref(), Some("sa"));
        assert_eq!(config.ttl_seconds_after_finished, 10);
        assert!(config.retain_jobs);
        assert!(!config.reattach_orphaned_jobs);
        assert_eq!(config.timeout_sec, 600);
        assert_eq!(config.grace_sec, 5);
        assert_eq!(config.secret_ref, "mine");
        assert!(config.host_network);
        assert_eq!(config.pvc_name.as_deref(), Some("shared"));
        assert_eq!(config.node_selector["disk"], "ssd");
        assert_eq!(config.labels["team"], "a");
        assert_eq!(config.tolerations[0].key.as_deref(), Some("k"));
    }

    #[test]
    fn every_key_with_a_wrong_type_warns_by_name_and_keeps_its_default() {
        let cases = [
            ("model", json!(5)),
            ("effort", json!(true)),
            ("maxTurnsPerRun", json!("3")),
            ("dangerouslySkipPermissions", json!("false")),
            ("instructionsFilePath", json!(["a"])),
            ("extraArgs", json!(12)),
            ("env", json!(12)),
            ("promptTemplate", json!({})),
            ("bootstrapPromptTemplate", json!(1)),
            ("cwd", json!(false)),
            ("namespace", json!(1)),
            ("image", json!({})),
            ("imagePullPolicy", json!(2)),
            ("kubeconfig", json!(2)),
            ("serviceAccountName", json!(2)),
            ("resources", json!("big")),
            ("nodeSelector", json!(3)),
            ("tolerations", json!(3)),
            ("labels", json!(true)),
            ("ttlSecondsAfterFinished", json!("300")),
            ("retainJobs", json!(1)),
            ("reattachOrphanedJobs", json!("yes")),
            ("timeoutSec", json!([])),
            ("graceSec", json!({})),
            ("secretRef", json!(9)),
            ("hostNetwork", json!("true")),
            ("pvcName", json!(9)),
        ];
        for (key, value) in cases {
            let seen = describe(&value);
            let (config, warnings) = parse(json!({ key: value }));
            assert_eq!(config, Config::default(), "{key}");
            assert_eq!(keys(&warnings), [key], "{key}");
            let line = warnings[0].to_string();
            assert!(line.contains(key), "{line}");
            assert!(line.contains(&seen), "{line} should name {seen}");
            assert!(
                line.contains("using"),
                "{line} should say what is used instead"
            );
        }
    }

    #[test]
    fn null_and_blank_strings_mean_unset_without_warning() {
        let (config, warnings) =
            parse(json!({"model": null, "image": "", "namespace": "  ", "env": null}));
        assert!(warnings.is_empty());
        assert_eq!(config, Config::default());
    }

    #[test]
    fn strings_are_trimmed() {
        let (config, _) = parse(json!({"model": " claude-opus-5-5\n", "cwd": " /work "}));
        assert_eq!(config.model.as_deref(), Some("claude-opus-5-5"));
        assert_eq!(config.cwd, "/work");
    }

    #[test]
    fn warnings_name_the_default_used_instead() {
        let (_, warnings) = parse(json!({"graceSec": -5, "maxTurnsPerRun": "x", "cwd": "rel"}));
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "[claude_k8s] config key `maxTurnsPerRun`: expected a non-negative whole number, got a string (\"x\"); using 0 (unlimited)",
                "[claude_k8s] config key `cwd`: expected an absolute path, got \"rel\"; using /paperclip",
                "[claude_k8s] config key `graceSec`: expected a non-negative whole number, got a number (-5); using 60",
            ]
        );
    }

    #[test]
    fn counts_accept_integral_floats_and_refuse_negative_fractional_or_huge() {
        let (config, warnings) = parse(json!({"timeoutSec": 600.0, "graceSec": 0}));
        assert!(warnings.is_empty());
        assert_eq!((config.timeout_sec, config.grace_sec), (600, 0));
        for bad in [json!(-1), json!(2.5), json!(1e300), json!(5_000_000_000u64)] {
            let (config, warnings) = parse(json!({"maxTurnsPerRun": bad}));
            assert_eq!(config.max_turns_per_run, 0);
            assert_eq!(keys(&warnings), ["maxTurnsPerRun"]);
            assert!(warnings[0].message.contains("non-negative whole number"));
        }
    }

    #[test]
    fn extra_args_string_is_split_like_a_shell() {
        let (config, warnings) = parse(json!({"extraArgs": "--a 'b c' \"d\""}));
        assert!(warnings.is_empty());
        assert_eq!(config.extra_args, ["--a", "b c", "d"]);
        let (config, warnings) = parse(json!({"extraArgs": "--a 'b"}));
        assert!(config.extra_args.is_empty());
        assert_eq!(keys(&warnings), ["extraArgs"]);
    }

    #[test]
    fn extra_args_drops_non_string_items_with_a_warning_each() {
        let (config, warnings) = parse(json!({"extraArgs": ["--x", 1, "--y", null]}));
        assert_eq!(config.extra_args, ["--x", "--y"]);
        assert_eq!(keys(&warnings), ["extraArgs[1]", "extraArgs[3]"]);
    }

    #[test]
    fn env_accepts_strings_plain_bindings_json_strings_and_lines() {
        let (config, warnings) =
            parse(json!({"env": {"A": "1", "B": {"type": "plain", "value": "2"}}}));
        assert!(warnings.is_empty());
        assert_eq!(
            (config.env["A"].as_str(), config.env["B"].as_str()),
            ("1", "2")
        );
        let (config, _) = parse(json!({"env": "{\"C\": \"3\"}"}));
        assert_eq!(config.env["C"], "3");
        let (config, warnings) = parse(json!({"env": "D=4\n# comment\nE=a=b\nNO_PROXY=a,b\n"}));
        assert!(warnings.is_empty());
        assert_eq!(
            (config.env["D"].as_str(), config.env["E"].as_str()),
            ("4", "a=b")
        );
        assert_eq!(config.env["NO_PROXY"], "a,b");
    }

    #[test]
    fn env_warns_per_key_for_unusable_values_and_names() {
        let (config, warnings) = parse(json!({"env": {
            "OK": "1", "NUM": 3, "SECRET": {"type": "secret_ref", "secretId": "x"},
            "BAD NAME": "v", "PAPERCLIP_API_KEY": "forged", "PLAIN": {"type": "plain", "value": 1}
        }}));
        assert_eq!(config.env.keys().collect::<Vec<_>>(), ["OK"]);
        let mut seen = keys(&warnings);
        seen.sort();
        assert_eq!(
            seen,
            [
                "env.BAD NAME",
                "env.NUM",
                "env.PAPERCLIP_API_KEY",
                "env.PLAIN",
                "env.SECRET"
            ]
        );
        let secret = warnings.iter().find(|w| w.key == "env.SECRET").unwrap();
        assert!(secret.message.contains("secret_ref"));
    }

    #[test]
    fn env_values_too_big_to_exec_are_refused() {
        let big = "x".repeat(MAX_ENV_ENTRY_BYTES);
        let (config, warnings) = parse(json!({"env": {"BIG": big, "OK": "1"}}));
        assert_eq!(config.env.keys().collect::<Vec<_>>(), ["OK"]);
        assert_eq!(keys(&warnings), ["env.BIG"]);
        assert!(warnings[0].message.contains("128 KiB"));
    }

    #[test]
    fn resources_read_nested_and_flat_keys_flat_winning() {
        let (config, warnings) = parse(json!({
            "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": 2}},
            "resources.limits.cpu": "3", "resources.limits.memory": "4Gi"
        }));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.resources,
            Resources {
                requests_cpu: "250m".into(),
                requests_memory: "1Gi".into(),
                limits_cpu: "3".into(),
                limits_memory: "4Gi".into(),
            }
        );
    }

    #[test]
    fn resources_refuse_bad_quantities_per_dotted_key() {
        let (config, warnings) = parse(json!({
            "resources": {"requests": {"cpu": "lots"}, "limits": "x"},
            "resources.limits.memory": true
        }));
        assert_eq!(config.resources, Resources::default());
        let mut seen = keys(&warnings);
        seen.sort();
        assert_eq!(
            seen,
            [
                "resources.limits",
                "resources.limits.memory",
                "resources.requests.cpu"
            ]
        );
    }

    #[test]
    fn label_maps_accept_objects_json_strings_and_key_value_lines() {
        let (config, warnings) = parse(json!({
            "nodeSelector": "kubernetes.io/arch=amd64\ndisk=ssd",
            "labels": "{\"team\": \"blue\"}"
        }));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.node_selector["kubernetes.io/arch"], "amd64");
        assert_eq!(config.node_selector["disk"], "ssd");
        assert_eq!(config.labels["team"], "blue");
        let (config, _) = parse(json!({"labels": "a=1, b=2"}));
        assert_eq!(config.labels.len(), 2);
    }

    #[test]
    fn labels_refuse_reserved_keys_and_invalid_syntax() {
        let (config, warnings) = parse(json!({"labels": {
            "paperclip.io/agent-id": "x", "app.kubernetes.io/name": "y", "job-name": "z",
            "bad key": "v", "ok": "bad value!", "num": 1, "fine": "yes"
        }}));
        assert_eq!(config.labels.keys().collect::<Vec<_>>(), ["fine"]);
        assert_eq!(warnings.len(), 6);
        assert!(warnings
            .iter()
            .any(|w| w.key == "labels.paperclip.io/agent-id" && w.message.contains("reserved")));
    }

    #[test]
    fn node_selector_allows_prefixed_keys_but_checks_syntax() {
        let (config, warnings) =
            parse(json!({"nodeSelector": {"node-role.kubernetes.io/x": "", "-bad": "v"}}));
        assert_eq!(config.node_selector.len(), 1);
        assert_eq!(keys(&warnings), ["nodeSelector.-bad"]);
        let (_, warnings) = parse(json!({"nodeSelector": "novalue"}));
        assert_eq!(keys(&warnings), ["nodeSelector"]);
    }

    #[test]
    fn tolerations_accept_json_strings_and_skip_bad_items() {
        let raw = r#"[{"key":"gpu","operator":"Equal","value":"yes","effect":"NoSchedule"},{"operator":"Sometimes"},{"effect":"Never"},{"tolerationSeconds":"x"},5]"#;
        let (config, warnings) = parse(json!({ "tolerations": raw }));
        assert_eq!(config.tolerations.len(), 1);
        assert_eq!(config.tolerations[0].value.as_deref(), Some("yes"));
        assert_eq!(
            keys(&warnings),
            [
                "tolerations[1]",
                "tolerations[2]",
                "tolerations[3]",
                "tolerations[4]"
            ]
        );
        let (_, warnings) = parse(json!({"tolerations": "not json"}));
        assert_eq!(keys(&warnings), ["tolerations"]);
    }

    #[test]
    fn names_and_enums_are_validated() {
        let (config, warnings) = parse(json!({
            "namespace": "Bad_NS", "secretRef": "UPPER", "pvcName": "ok.pvc",
            "imagePullPolicy": "sometimes", "cwd": "relative/dir", "serviceAccountName": "sa!"
        }));
        assert_eq!(config.namespace, None);
        assert_eq!(config.secret_ref, "paperclip-secrets");
        assert_eq!(config.pvc_name.as_deref(), Some("ok.pvc"));
        assert_eq!(config.image_pull_policy, "IfNotPresent");
        assert_eq!(config.cwd, "/paperclip");
        let mut seen = keys(&warnings);
        seen.sort();
        assert_eq!(
            seen,
            [
                "cwd",
                "imagePullPolicy",
                "namespace",
                "secretRef",
                "serviceAccountName"
            ]
        );
    }

    #[test]
    fn label_syntax_helpers_follow_kubernetes_rules() {
        assert!(is_label_value(""));
        assert!(is_label_value("a.b-c_d"));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(is_label_key("example.com/name"));
        assert!(!is_label_key("Example.com/name"));
        assert!(!is_label_key("example.com/"));
        assert!(is_env_name("HTTP_PROXY"));
        assert!(is_env_name("my.var-1"));
        assert!(!is_env_name("1ABC"));
        assert!(!is_env_name("A=B"));
    }
}
