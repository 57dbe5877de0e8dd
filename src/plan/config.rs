//! `ctx.config` read strictly (SPEC §4): every key has one typed field here, and every value that
//! was present but unusable becomes a [`ConfigWarning`] naming the key, never a silent default.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;

/// A present-but-unusable config value, reported on stderr by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The config key, dotted for nested values (`resources.limits.cpu`).
    pub key: String,
    /// What was wrong and what is used instead.
    pub message: String,
}

/// Requests and limits of the `claude` container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub requests_cpu: String,
    pub requests_memory: String,
    pub limits_cpu: String,
    pub limits_memory: String,
}

/// The adapter configuration, every field defaulted as SPEC §4 says.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub model: Option<String>,
    pub effort: Option<String>,
    /// 0 = unlimited.
    pub max_turns_per_run: u32,
    pub dangerously_skip_permissions: bool,
    pub instructions_file_path: Option<String>,
    pub extra_args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub prompt_template: String,
    pub bootstrap_prompt_template: Option<String>,
    pub cwd: String,
    pub namespace: Option<String>,
    pub image: Option<String>,
    pub image_pull_policy: String,
    pub kubeconfig: Option<String>,
    pub service_account_name: Option<String>,
    pub resources: Resources,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub labels: BTreeMap<String, String>,
    pub ttl_seconds_after_finished: u32,
    pub retain_jobs: bool,
    pub reattach_orphaned_jobs: bool,
    /// 0 = no deadline.
    pub timeout_sec: u64,
    pub grace_sec: u64,
    pub secret_ref: String,
    /// Run the pod in the node's network namespace (testbeds and node-local API proxies). Breaks
    /// the "restricted" Pod Security Standard, so it is off unless asked for.
    pub host_network: bool,
    /// PVC to mount at `/paperclip` when none is inherited from the Paperclip pod.
    pub pvc_name: Option<String>,
}
