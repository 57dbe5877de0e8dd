//! Typed Job and Secret manifests for one run, and what a Job inherits from the Paperclip pod.
//! Pure: no kube `Client`, no tokio; the cluster code creates what these functions return.
//!
//! Pod layout: the init container `prompt` concatenates the prompt chunks (one Secret volume each)
//! into `/var/run/paperclip/prompt` on an emptyDir; the main container `claude` execs the CLI with
//! that file on stdin, so the CLI's exit code is the container's. The prompt never appears in argv
//! or in a literal env value.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, KeyToPath,
    LocalObjectReference, PersistentVolumeClaimVolumeSource, Pod, PodDNSConfig, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;

use crate::error::ErrorCode;
use crate::plan::config::Config;
use crate::plan::env::{self, EnvSource};

/// Bytes of prompt per Secret. Secrets stop at 1 MiB; the rest leaves room for the secret env
/// values in `<job>-0` and for the object's metadata.
pub const PROMPT_CHUNK_BYTES: usize = 768 * 1024;

/// Largest prompt we accept (11 Secrets): far past what the CLI's context window holds anyway.
pub const MAX_PROMPT_BYTES: usize = 8 * 1024 * 1024;

/// Key of the prompt chunk inside each prompt Secret. Secret env values use their env name as key.
pub const PROMPT_KEY: &str = "prompt";

/// Image of the init container that assembles the prompt file (only needs `sh` and `cat`).
pub const DEFAULT_INIT_IMAGE: &str = "busybox:1.36";

/// Where the `claude` container finds its stdin.
pub const PROMPT_FILE: &str = "/var/run/paperclip/prompt";

/// The agent's HOME and default working directory: sessions live here between runs.
pub const WORKSPACE_PATH: &str = "/paperclip";

/// uid, gid and fsGroup of both containers (the "restricted" Pod Security Standard needs non-root).
pub const AGENT_UID: i64 = 1000;

/// The init container's script: its argv after `$0` are the chunk files, in order.
const PROMPT_SCRIPT: &str = "exec cat \"$@\" > /var/run/paperclip/prompt";
/// The claude container's script. The CLI's exit code becomes the container's (no pipe), and the
/// script prints it as the log's last line ([`EXIT_MARKER`]): the kubelet notices a finished
/// container only on its next 1 s relist, so the in-band line ends a run about a second sooner
/// than the pod status or the Job condition can. SIGTERM (a deleted pod) is passed on to the CLI.
///
/// NB: containerd 1.6 drops the output still in flight when a container exits right after a
/// burst (`seq 1 100000` as the last command keeps about 93,000 lines); the script lingers a second
/// after the marker so everything, the `result` line included, reaches the log. The adapter settles
/// on the marker itself, so the linger costs a run no time.
const CLAUDE_SCRIPT: &str = r#"trap 'term=1; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null' TERM INT
claude "$@" < /var/run/paperclip/prompt &
pid=$!
[ -z "$term" ] || kill -TERM "$pid" 2>/dev/null
while :; do
  wait "$pid"; rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
printf '%s%s\n' '[claude_k8s] claude exited with code ' "$rc"
sleep 1
exit "$rc""#;
/// The name of the container that runs the CLI; its log is the run's transcript.
pub const CLAUDE_CONTAINER: &str = "claude";
/// The start of the claude container's last line; the CLI's exit code follows it.
pub const EXIT_MARKER: &str = "[claude_k8s] claude exited with code ";
/// The emptyDir holding the assembled prompt file.
const PROMPT_DIR: &str = "/var/run/paperclip";
/// Parent of the per-chunk Secret mounts in the init container, one zero-padded directory each.
const PARTS_DIR: &str = "/var/run/paperclip-prompt-parts";
/// The file name each chunk is projected to inside its Secret mount.
const PART_FILE: &str = "part";
/// Where kubelet mounts the service-account token on 1.20 (a Secret volume we must not copy).
const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Read for owner and group: kubelet gives Secret files group `fsGroup`, the owner stays root.
const SECRET_FILE_MODE: i32 = 0o440;

/// A manifest that cannot be built from this run's inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The prompt exceeds [`MAX_PROMPT_BYTES`].
    #[error("prompt is {bytes} bytes; at most {max} bytes fit in the prompt Secrets", max = MAX_PROMPT_BYTES)]
    PromptTooLarge {
        /// The prompt's size in bytes.
        bytes: usize,
    },
    /// A secret env name cannot be a Secret key, or collides with [`PROMPT_KEY`].
    #[error("env name {name:?} cannot travel in a Secret (keys are letters, digits, '-', '_', '.', and not {PROMPT_KEY:?})")]
    SecretEnvName {
        /// The offending env name.
        name: String,
    },
    /// No `image` configured and none inherited from a Paperclip pod.
    #[error("no image for the claude container: set `image` in the adapter config (outside a pod nothing is inherited)")]
    ImageMissing,
}

impl Error {
    /// The SPEC error code of this failure.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }
}

/// What the Job inherits from the Paperclip pod (SPEC §5 step 2). `Default` = nothing (outside a pod).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inherited {
    /// Image of the Paperclip container.
    pub image: Option<String>,
    /// The pod's imagePullSecrets.
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The pod's dnsPolicy, kept together with its dnsConfig.
    pub dns_policy: Option<String>,
    /// The pod's dnsConfig.
    pub dns_config: Option<PodDNSConfig>,
    /// The PVC the Paperclip container mounts at `/paperclip`.
    pub workspace_claim: Option<ClaimMount>,
    /// Secret-backed volumes of the Paperclip container (mounted read-only in the Job).
    pub secret_volumes: Vec<SecretMount>,
    /// Env entries with a literal value (an absent value is empty), in order.
    pub literal_env: Vec<(String, String)>,
    /// Env entries with `valueFrom`, in order.
    pub value_from_env: Vec<(String, EnvVarSource)>,
    /// The container's `envFrom`.
    pub env_from: Vec<EnvFromSource>,
    /// The pod's nodeSelector.
    pub node_selector: BTreeMap<String, String>,
    /// The pod's tolerations.
    pub tolerations: Vec<Toleration>,
}

/// A PVC mount: claim name plus the mount's subPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMount {
    /// `persistentVolumeClaim.claimName`
    pub claim_name: String,
    /// The mount's `subPath`, if any.
    pub sub_path: Option<String>,
}

/// A Secret volume with where it was mounted.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretMount {
    /// The volume source as the Paperclip pod declares it.
    pub source: SecretVolumeSource,
    /// The mount path in the Paperclip container (reused as is).
    pub mount_path: String,
    /// The mount's `subPath`, if any.
    pub sub_path: Option<String>,
}

/// What backs `/paperclip` in the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspace {
    /// A PVC: sessions persist across runs.
    Claim(ClaimMount),
    /// An emptyDir: `--resume` will not find earlier sessions.
    EmptyDir,
}

/// `/paperclip` for the Job: the inherited PVC, else config `pvcName`, else an emptyDir.
pub fn workspace(config: &Config, inherited: &Inherited) -> Workspace {
    match (&inherited.workspace_claim, &config.pvc_name) {
        (Some(claim), _) => Workspace::Claim(claim.clone()),
        (None, Some(name)) => Workspace::Claim(ClaimMount {
            claim_name: name.clone(),
            sub_path: None,
        }),
        (None, None) => Workspace::EmptyDir,
    }
}

/// The claude container's image: config `image`, else the Paperclip pod's.
///
/// # Errors
/// [`Error::ImageMissing`] when neither exists.
pub fn image<'a>(config: &'a Config, inherited: &'a Inherited) -> Result<&'a str, Error> {
    config
        .image
        .as_deref()
        .or(inherited.image.as_deref())
        .ok_or(Error::ImageMissing)
}

/// Reads what a Job inherits from the Paperclip pod. The Paperclip container is the one whose name
/// contains "paperclip", else the first.
pub fn inherit_from_pod(pod: &Pod) -> Inherited {
    let Some(spec) = &pod.spec else {
        return Inherited::default();
    };
    let container = spec
        .containers
        .iter()
        .find(|c| c.name.contains("paperclip"))
        .or(spec.containers.first());
    let volume = |name: &str| spec.volumes.iter().flatten().find(|v| v.name == name);
    let mounts = container.and_then(|c| c.volume_mounts.as_ref());

    let workspace_claim = mounts
        .into_iter()
        .flatten()
        .filter(|m| m.mount_path.trim_end_matches('/') == WORKSPACE_PATH)
        .find_map(|m| {
            let claim = volume(&m.name)?.persistent_volume_claim.as_ref()?;
            Some(ClaimMount {
                claim_name: claim.claim_name.clone(),
                sub_path: m.sub_path.clone(),
            })
        });
    let secret_volumes = mounts
        .into_iter()
        .flatten()
        .filter(|m| !m.mount_path.starts_with(SERVICE_ACCOUNT_PATH))
        .filter_map(|m| {
            Some(SecretMount {
                source: volume(&m.name)?.secret.clone()?,
                mount_path: m.mount_path.clone(),
                sub_path: m.sub_path.clone(),
            })
        })
        .collect();

    let mut literal_env = Vec::new();
    let mut value_from_env = Vec::new();
    for e in container.and_then(|c| c.env.clone()).unwrap_or_default() {
        match e.value_from {
            Some(mut source) => {
                // A resourceFieldRef naming the Paperclip container would name a container the
                // Job does not have; without a name it refers to the container it is set in.
                if let Some(r) = source.resource_field_ref.as_mut() {
                    r.container_name = None;
                }
                value_from_env.push((e.name, source));
            }
            None => literal_env.push((e.name, e.value.unwrap_or_default())),
        }
    }

    Inherited {
        image: container.and_then(|c| c.image.clone()),
        image_pull_secrets: spec.image_pull_secrets.clone().unwrap_or_default(),
        dns_policy: spec.dns_config.as_ref().and(spec.dns_policy.clone()),
        dns_config: spec.dns_config.clone(),
        workspace_claim,
        secret_volumes,
        literal_env,
        value_from_env,
        env_from: container
            .and_then(|c| c.env_from.clone())
            .unwrap_or_default(),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        tolerations: spec.tolerations.clone().unwrap_or_default(),
    }
}

/// The CLI's argv after `claude` (SPEC §5 step 5). `instructions_file` is appended only on fresh
/// sessions (`resume_session` is `None`); `add_dirs` become `--add-dir` flags.
pub fn claude_args(
    config: &Config,
    resume_session: Option<&str>,
    instructions_file: Option<&str>,
    add_dirs: &[String],
) -> Vec<String> {
    fn push(args: &mut Vec<String>, flag: &str, value: Option<&str>) {
        if let Some(value) = value {
            args.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    let mut args: Vec<String> = ["--print", "--output-format", "stream-json", "--verbose"]
        .map(String::from)
        .into();
    push(&mut args, "--resume", resume_session);
    if config.dangerously_skip_permissions {
        args.push("--dangerously-skip-permissions".into());
    }
    push(&mut args, "--model", config.model.as_deref());
    push(&mut args, "--effort", config.effort.as_deref());
    let max_turns = config.max_turns_per_run.to_string();
    push(
        &mut args,
        "--max-turns",
        (config.max_turns_per_run > 0).then_some(&max_turns),
    );
    let fresh_instructions = instructions_file.filter(|_| resume_session.is_none());
    push(&mut args, "--append-system-prompt-file", fresh_instructions);
    for dir in add_dirs {
        push(&mut args, "--add-dir", Some(dir));
    }
    args.extend(config.extra_args.iter().cloned());
    args
}

/// Everything [`build_job`] needs besides the config and the inherited pieces.
#[derive(Debug, Clone)]
pub struct JobInput<'a> {
    /// Job name (also the prefix of its Secrets' names).
    pub name: &'a str,
    /// Namespace of the Job and its Secrets.
    pub namespace: &'a str,
    /// Labels of the Job, its pod template and its Secrets.
    pub labels: &'a BTreeMap<String, String>,
    /// Image of the `claude` container (see [`image`]).
    pub image: &'a str,
    /// Image of the `prompt` init container, normally [`DEFAULT_INIT_IMAGE`].
    pub init_image: &'a str,
    /// The CLI's arguments (see [`claude_args`]).
    pub args: Vec<String>,
    /// Working directory of the `claude` container.
    pub cwd: &'a str,
    /// The resolved env; secret values are `secretKeyRef`s into Secret `<name>-0`.
    pub env: Vec<EnvVar>,
    /// How many prompt Secrets [`build_secrets`] made.
    pub prompt_parts: usize,
    /// The adapter config.
    pub config: &'a Config,
    /// What the Paperclip pod passes on.
    pub inherited: &'a Inherited,
}

/// The CLI's exit code, when `line` is the claude container's last line (see [`EXIT_MARKER`]). A
/// CLI that died mid-line leaves its partial output in front of the marker.
pub fn exit_marker(line: &str) -> Option<i32> {
    let (_, code) = line.rsplit_once(EXIT_MARKER)?;
    code.parse().ok()
}

/// The container env of the resolved variables: literals as values, secret-looking values as
/// `secretKeyRef`s into Secret `secret` (returned as its data), inherited `valueFrom` as is.
pub fn container_env(env: &[env::EnvVar], secret: &str) -> (Vec<EnvVar>, BTreeMap<String, String>) {
    let mut secret_data = BTreeMap::new();
    let vars = env
        .iter()
        .map(|var| {
            let (value, value_from) = match &var.source {
                EnvSource::Literal(value) => (Some(value.clone()), None),
                EnvSource::Secret { key, value } => {
                    secret_data.insert(key.clone(), value.clone());
                    let selector = SecretKeySelector {
                        name: secret.to_owned(),
                        key: key.clone(),
                        optional: None,
                    };
                    let source = EnvVarSource {
                        secret_key_ref: Some(selector),
                        ..EnvVarSource::default()
                    };
                    (None, Some(source))
                }
                EnvSource::Inherited(source) => (None, Some(source.clone())),
            };
            EnvVar {
                name: var.name.clone(),
                value,
                value_from,
            }
        })
        .collect();
    (vars, secret_data)
}

/// A note for the operator when `/paperclip` is an emptyDir: sessions will not survive the run.
pub fn workspace_note(config: &Config, inherited: &Inherited) -> Option<String> {
    matches!(workspace(config, inherited), Workspace::EmptyDir).then(|| {
        format!(
            "{WORKSPACE_PATH} is an emptyDir (no PVC inherited from the Paperclip pod and no \
             pvcName configured): Claude's session will not persist, so the next run cannot resume it"
        )
    })
}

/// The name of prompt Secret `n` of Job `job`.
pub fn secret_name(job: &str, n: usize) -> String {
    format!("{job}-{n}")
}

/// The Job of one run. TTL is left out when `retainJobs` is set, so retained Jobs stay.
pub fn build_job(input: &JobInput) -> Job {
    let config = input.config;
    let inherited = input.inherited;
    let workspace = workspace(config, inherited);
    let mut node_selector = inherited.node_selector.clone();
    node_selector.extend(config.node_selector.clone());
    let mut tolerations = inherited.tolerations.clone();
    for t in &config.tolerations {
        if !tolerations.contains(t) {
            tolerations.push(t.clone());
        }
    }
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        init_containers: Some(vec![prompt_container(input)]),
        containers: vec![claude_container(input, &workspace)],
        volumes: Some(volumes(input, workspace)),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(AGENT_UID),
            run_as_group: Some(AGENT_UID),
            fs_group: Some(AGENT_UID),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        service_account_name: config.service_account_name.clone(),
        // The agent talks to Paperclip, not to Kubernetes: it gets API credentials only when an
        // operator names a service account for it.
        automount_service_account_token: config.service_account_name.is_none().then_some(false),
        host_network: config.host_network.then_some(true),
        node_selector: (!node_selector.is_empty()).then_some(node_selector),
        tolerations: non_empty(tolerations),
        image_pull_secrets: non_empty(inherited.image_pull_secrets.clone()),
        dns_policy: inherited.dns_policy.clone(),
        dns_config: inherited.dns_config.clone(),
        ..PodSpec::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(input.name.into()),
            namespace: Some(input.namespace.into()),
            labels: Some(input.labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: (config.timeout_sec > 0)
                .then(|| i64::try_from(config.timeout_sec).unwrap_or(i64::MAX)),
            ttl_seconds_after_finished: (!config.retain_jobs)
                .then(|| i32::try_from(config.ttl_seconds_after_finished).unwrap_or(i32::MAX)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(input.labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// Mount point of prompt chunk `n` in the init container; zero-padded so that any listing of
/// the directory sorts like the numbers (a dozen chunks at most).
fn part_dir(n: usize) -> String {
    format!("{PARTS_DIR}/{n:03}")
}

/// The init container: concatenates the chunk files, in order, into [`PROMPT_FILE`].
fn prompt_container(input: &JobInput) -> Container {
    let command = ["sh", "-c", PROMPT_SCRIPT, "prompt"]
        .map(String::from)
        .into_iter()
        .chain((0..input.prompt_parts).map(|n| format!("{}/{PART_FILE}", part_dir(n))));
    let mut mounts = vec![mount("prompt", PROMPT_DIR, false)];
    mounts.extend(
        (0..input.prompt_parts).map(|n| mount(&format!("prompt-part-{n}"), &part_dir(n), true)),
    );
    Container {
        name: "prompt".into(),
        image: Some(input.init_image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(command.collect()),
        volume_mounts: Some(mounts),
        resources: Some(requirements("10m", "16Mi", "100m", "64Mi")),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// The main container: the CLI with the prompt file on stdin and `input.args` as its argv.
fn claude_container(input: &JobInput, workspace: &Workspace) -> Container {
    let inherited = input.inherited;
    let mut mounts = vec![
        mount("tmp", "/tmp", false),
        mount("prompt", PROMPT_DIR, true),
        VolumeMount {
            sub_path: match workspace {
                Workspace::Claim(claim) => claim.sub_path.clone(),
                Workspace::EmptyDir => None,
            },
            ..mount("workspace", WORKSPACE_PATH, false)
        },
    ];
    mounts.extend(
        inherited
            .secret_volumes
            .iter()
            .enumerate()
            .map(|(i, s)| VolumeMount {
                sub_path: s.sub_path.clone(),
                ..mount(&format!("inherited-{i}"), &s.mount_path, true)
            }),
    );
    let command = ["sh", "-c", CLAUDE_SCRIPT, "claude"]
        .map(String::from)
        .into_iter()
        .chain(input.args.iter().cloned());
    let r = &input.config.resources;
    Container {
        name: CLAUDE_CONTAINER.into(),
        image: Some(input.image.into()),
        image_pull_policy: Some(input.config.image_pull_policy.clone()),
        command: Some(command.collect()),
        working_dir: Some(input.cwd.into()),
        env: Some(input.env.clone()),
        env_from: non_empty(inherited.env_from.clone()),
        volume_mounts: Some(mounts),
        resources: Some(requirements(
            &r.requests_cpu,
            &r.requests_memory,
            &r.limits_cpu,
            &r.limits_memory,
        )),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// The pod's volumes: scratch, prompt file, workspace, one per prompt chunk, inherited Secrets
/// (renamed `inherited-N` so they cannot clash with ours).
fn volumes(input: &JobInput, workspace: Workspace) -> Vec<Volume> {
    let mut volumes = vec![
        empty_dir("tmp"),
        empty_dir("prompt"),
        match workspace {
            Workspace::Claim(claim) => Volume {
                name: "workspace".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.claim_name,
                    read_only: None,
                }),
                ..Volume::default()
            },
            Workspace::EmptyDir => empty_dir("workspace"),
        },
    ];
    volumes.extend((0..input.prompt_parts).map(|n| Volume {
        name: format!("prompt-part-{n}"),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name(input.name, n)),
            items: Some(vec![KeyToPath {
                key: PROMPT_KEY.into(),
                path: PART_FILE.into(),
                mode: None,
            }]),
            default_mode: Some(SECRET_FILE_MODE),
            optional: None,
        }),
        ..Volume::default()
    }));
    let inherited = input.inherited.secret_volumes.iter().enumerate();
    volumes.extend(inherited.map(|(i, s)| Volume {
        name: format!("inherited-{i}"),
        secret: Some(s.source.clone()),
        ..Volume::default()
    }));
    volumes
}

/// The prompt Secrets of Job `job_name`: `<job>-0` holds `secret_env` (key = env name) and the first
/// [`PROMPT_CHUNK_BYTES`] of the prompt under [`PROMPT_KEY`]; `<job>-1`, ... hold the rest. Chunks
/// split on byte boundaries: the init container concatenates bytes, so UTF-8 comes out whole.
///
/// # Errors
/// [`Error::PromptTooLarge`] over [`MAX_PROMPT_BYTES`]; [`Error::SecretEnvName`] for an env name
/// that is no valid Secret key.
pub fn build_secrets(
    job_name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    secret_env: &BTreeMap<String, String>,
    prompt: &str,
) -> Result<Vec<Secret>, Error> {
    let bytes = prompt.as_bytes();
    if bytes.len() > MAX_PROMPT_BYTES {
        return Err(Error::PromptTooLarge { bytes: bytes.len() });
    }
    if let Some(name) = secret_env.keys().find(|k| !is_secret_key(k)) {
        return Err(Error::SecretEnvName { name: name.clone() });
    }
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(PROMPT_CHUNK_BYTES).collect()
    };
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(n, chunk)| {
            let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
            if n == 0 {
                data.extend(
                    secret_env
                        .iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))),
                );
            }
            data.insert(PROMPT_KEY.into(), ByteString(chunk.to_vec()));
            Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name(job_name, n)),
                    namespace: Some(namespace.into()),
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                type_: Some("Opaque".into()),
                // Immutable Secrets are not watched by kubelet; ownerReferences stay patchable.
                immutable: Some(true),
                ..Secret::default()
            }
        })
        .collect())
}

/// An ownerReference to a created Job (it needs the server-assigned uid; `None` before that).
/// Not a controller reference; `blockOwnerDeletion` keeps foreground deletes honest.
pub fn owner_reference(job: &Job) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone()?,
        uid: job.metadata.uid.clone()?,
        controller: Some(false),
        block_owner_deletion: Some(true),
    })
}

/// Secret keys: `[-._a-zA-Z0-9]+`, and not the prompt's own key.
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key != PROMPT_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn requirements(
    req_cpu: &str,
    req_mem: &str,
    lim_cpu: &str,
    lim_mem: &str,
) -> ResourceRequirements {
    let pair = |cpu: &str, mem: &str| {
        let map: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", mem)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: pair(req_cpu, req_mem),
        limits: pair(lim_cpu, lim_mem),
        ..ResourceRequirements::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        run_as_user: Some(AGENT_UID),
        run_as_group: Some(AGENT_UID),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVarSource, SecretKeySelector};

    fn config() -> Config {
        Config {
            prompt_template: String::new(),
            image: Some("paperclip/claude-agent:dev".into()),
            ..Config::default()
        }
    }

    fn fixture(name: &str) -> Pod {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn labels() -> BTreeMap<String, String> {
        [("paperclip.io/agent-id".to_owned(), "a1".to_owned())].into()
    }

    fn job_with(config: &Config, inherited: &Inherited, parts: usize) -> Job {
        build_job(&JobInput {
            name: "ac-a1-r1-abcdef",
            namespace: "ns",
            labels: &labels(),
            image: "paperclip/claude-agent:dev",
            init_image: DEFAULT_INIT_IMAGE,
            args: vec!["--print".into(), "it's $(not) `run`".into()],
            cwd: "/paperclip/work",
            env: vec![EnvVar {
                name: "PAPERCLIP_API_KEY".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "ac-a1-r1-abcdef-0".into(),
                        key: "PAPERCLIP_API_KEY".into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
                value: None,
            }],
            prompt_parts: parts,
            config,
            inherited,
        })
    }

    fn pod_spec(job: &Job) -> &PodSpec {
        job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn container<'a>(job: &'a Job, name: &str) -> &'a Container {
        let spec = pod_spec(job);
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    }

    fn mount_of<'a>(c: &'a Container, path: &str) -> &'a VolumeMount {
        c.volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("no mount at {path}"))
    }

    fn volume<'a>(job: &'a Job, name: &str) -> &'a Volume {
        pod_spec(job)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap()
    }

    #[test]
    fn both_scripts_use_the_prompt_file() {
        assert!(PROMPT_SCRIPT.ends_with(&format!("> {PROMPT_FILE}")));
        assert!(CLAUDE_SCRIPT.contains(&format!("\nclaude \"$@\" < {PROMPT_FILE} &\n")));
    }

    /// Runs the claude container's script under the host's `sh` with a stand-in `claude` that
    /// runs `body`; the prompt file is swapped for a temporary one.
    fn run_claude_script(body: &str) -> std::process::Output {
        let dir = std::env::temp_dir().join(format!(
            "claude-script-{}-{}",
            std::process::id(),
            body.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("claude");
        std::fs::write(&fake, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&fake)
            .status()
            .unwrap();
        let prompt = dir.join("prompt");
        std::fs::write(&prompt, "the prompt").unwrap();
        let script = CLAUDE_SCRIPT.replace(PROMPT_FILE, prompt.to_str().unwrap());
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "claude", "--print", "it's $(not) run"])
            .env("PATH", path)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn claude_script_passes_argv_and_stdin_and_ends_with_the_exit_marker() {
        let out = run_claude_script(r#"printf '%s|' "$@"; cat; echo; exit 3"#);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "--print|it's $(not) run|the prompt",
                "[claude_k8s] claude exited with code 3"
            ]
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(exit_marker(lines[1]), Some(3));
    }

    #[test]
    fn claude_script_forwards_sigterm_and_reports_the_cli_s_own_exit() {
        let out = run_claude_script(
            r#"sleep 5 & trap 'echo got-term; kill $!; exit 143' TERM; kill -TERM $PPID; wait"#,
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout,
            "got-term\n[claude_k8s] claude exited with code 143\n"
        );
        assert_eq!(out.status.code(), Some(143));
    }

    #[test]
    fn exit_marker_reads_the_code_even_after_a_partial_line() {
        assert_eq!(
            exit_marker("[claude_k8s] claude exited with code 0"),
            Some(0)
        );
        assert_eq!(
            exit_marker("{\"type\":\"assist[claude_k8s] claude exited with code 137"),
            Some(137)
        );
        assert_eq!(exit_marker("[claude_k8s] claude exited with code "), None);
        assert_eq!(exit_marker("{\"type\":\"result\"}"), None);
    }

    #[test]
    fn claude_args_fresh_session_carries_every_configured_flag_in_order() {
        let config = Config {
            model: Some("claude-sonnet-4-5".into()),
            effort: Some("high".into()),
            max_turns_per_run: 7,
            extra_args: vec!["--foo".into(), "bar baz".into()],
            ..config()
        };
        let args = claude_args(
            &config,
            None,
            Some("/paperclip/AGENTS.md"),
            &["/skills".into()],
        );
        assert_eq!(
            args.join(" "),
            "--print --output-format stream-json --verbose --dangerously-skip-permissions \
             --model claude-sonnet-4-5 --effort high --max-turns 7 \
             --append-system-prompt-file /paperclip/AGENTS.md --add-dir /skills --foo bar baz"
        );
        assert_eq!(args.last().map(String::as_str), Some("bar baz"));
    }

    #[test]
    fn claude_args_resumed_session_skips_instructions_and_unset_flags() {
        let config = Config {
            dangerously_skip_permissions: false,
            ..config()
        };
        let args = claude_args(&config, Some("sess-1"), Some("/paperclip/AGENTS.md"), &[]);
        assert_eq!(
            args.join(" "),
            "--print --output-format stream-json --verbose --resume sess-1"
        );
    }

    #[test]
    fn pod_meets_the_restricted_pod_security_standard() {
        let job = job_with(&config(), &Inherited::default(), 1);
        let spec = pod_spec(&job);
        let pod_sc = spec.security_context.as_ref().unwrap();
        assert_eq!(pod_sc.run_as_non_root, Some(true));
        assert_eq!(pod_sc.run_as_user, Some(1000));
        assert_eq!(pod_sc.run_as_group, Some(1000));
        assert_eq!(pod_sc.fs_group, Some(1000));
        assert_eq!(
            pod_sc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(spec.host_network, None);
        assert!(spec.volumes.iter().flatten().all(|v| v.host_path.is_none()));
        for name in ["prompt", "claude"] {
            let sc = container(&job, name).security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop,
                Some(vec!["ALL".to_owned()])
            );
            assert_eq!(sc.capabilities.as_ref().unwrap().add, None);
            assert_eq!(sc.run_as_non_root, Some(true));
            assert_eq!(sc.privileged, None);
            assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        }
    }

    #[test]
    fn job_runs_once_with_ttl_and_labels_on_job_and_pod() {
        let job = job_with(&config(), &Inherited::default(), 1);
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.ttl_seconds_after_finished, Some(300));
        assert_eq!(spec.active_deadline_seconds, None);
        assert_eq!(pod_spec(&job).restart_policy.as_deref(), Some("Never"));
        assert_eq!(job.metadata.labels, Some(labels()));
        assert_eq!(
            spec.template.metadata.as_ref().unwrap().labels,
            Some(labels())
        );
        assert_eq!(job.metadata.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn retained_jobs_get_no_ttl_and_timeouts_become_the_active_deadline() {
        let config = Config {
            retain_jobs: true,
            timeout_sec: 900,
            host_network: true,
            ..config()
        };
        let job = job_with(&config, &Inherited::default(), 1);
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.ttl_seconds_after_finished, None);
        assert_eq!(spec.active_deadline_seconds, Some(900));
        assert_eq!(pod_spec(&job).host_network, Some(true));
    }

    #[test]
    fn claude_runs_the_cli_with_the_prompt_file_on_stdin_and_args_as_argv() {
        let job = job_with(&config(), &Inherited::default(), 1);
        let claude = container(&job, "claude");
        assert_eq!(
            claude.command.as_ref().unwrap(),
            &[
                "sh",
                "-c",
                CLAUDE_SCRIPT,
                "claude",
                "--print",
                "it's $(not) `run`"
            ]
        );
        assert_eq!(claude.args, None);
        assert_eq!(claude.working_dir.as_deref(), Some("/paperclip/work"));
        assert_eq!(claude.env.as_ref().unwrap()[0].name, "PAPERCLIP_API_KEY");
        assert_eq!(mount_of(claude, "/var/run/paperclip").read_only, Some(true));
        assert_eq!(mount_of(claude, "/tmp").read_only, None);
        assert_eq!(mount_of(claude, "/paperclip").read_only, None);
        assert!(volume(&job, "tmp").empty_dir.is_some());
        assert!(volume(&job, "workspace").empty_dir.is_some());
        let limits = claude.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"], Quantity("8Gi".into()));
    }

    #[test]
    fn init_container_concatenates_parts_in_numeric_order_past_ten() {
        let job = job_with(&config(), &Inherited::default(), 12);
        let init = container(&job, "prompt");
        let command = init.command.as_ref().unwrap();
        assert_eq!(
            command[..3],
            ["sh", "-c", "exec cat \"$@\" > /var/run/paperclip/prompt"]
        );
        let parts: Vec<&str> = command[4..].iter().map(String::as_str).collect();
        assert_eq!(parts.len(), 12);
        assert_eq!(parts[0], "/var/run/paperclip-prompt-parts/000/part");
        assert_eq!(parts[2], "/var/run/paperclip-prompt-parts/002/part");
        assert_eq!(parts[10], "/var/run/paperclip-prompt-parts/010/part");
        let mut sorted = parts.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted, parts,
            "a shell glob over the directory gives the same order"
        );
        let part = mount_of(init, "/var/run/paperclip-prompt-parts/011");
        assert_eq!(part.read_only, Some(true));
        let source = volume(&job, &part.name).secret.as_ref().unwrap();
        assert_eq!(source.secret_name.as_deref(), Some("ac-a1-r1-abcdef-11"));
        assert_eq!(source.items.as_ref().unwrap()[0].key, PROMPT_KEY);
        assert_eq!(mount_of(init, "/var/run/paperclip").read_only, None);
    }

    #[test]
    fn secrets_split_large_prompts_into_ordered_chunks_that_reassemble_byte_identically() {
        let prompt = "héllo wörld ✓ ".repeat(PROMPT_CHUNK_BYTES * 2 / 10);
        let env = [("PAPERCLIP_API_KEY".to_owned(), "tok".to_owned())].into();
        let secrets = build_secrets("job", "ns", &labels(), &env, &prompt).unwrap();
        assert_eq!(secrets.len(), prompt.len().div_ceil(PROMPT_CHUNK_BYTES));
        assert!(secrets.len() >= 3);
        let mut joined = Vec::new();
        for (n, secret) in secrets.iter().enumerate() {
            assert_eq!(secret.metadata.name, Some(format!("job-{n}")));
            assert_eq!(secret.metadata.labels, Some(labels()));
            let data = secret.data.as_ref().unwrap();
            assert!(data[PROMPT_KEY].0.len() <= PROMPT_CHUNK_BYTES);
            assert_eq!(data.contains_key("PAPERCLIP_API_KEY"), n == 0);
            joined.extend_from_slice(&data[PROMPT_KEY].0);
        }
        assert_eq!(joined, prompt.as_bytes());
        assert_eq!(
            secrets[0].data.as_ref().unwrap()["PAPERCLIP_API_KEY"].0,
            b"tok"
        );
    }

    #[test]
    fn secrets_hold_an_empty_prompt_in_one_secret() {
        let secrets = build_secrets("job", "ns", &labels(), &BTreeMap::new(), "").unwrap();
        assert_eq!(secrets.len(), 1);
        assert!(secrets[0].data.as_ref().unwrap()[PROMPT_KEY].0.is_empty());
    }

    #[test]
    fn secrets_refuse_prompts_over_eight_mebibytes() {
        let prompt = "x".repeat(MAX_PROMPT_BYTES + 1);
        let err = build_secrets("job", "ns", &labels(), &BTreeMap::new(), &prompt).unwrap_err();
        assert_eq!(
            err,
            Error::PromptTooLarge {
                bytes: MAX_PROMPT_BYTES + 1
            }
        );
        assert_eq!(err.code(), ErrorCode::ConfigInvalid);
        assert!(err.to_string().contains("8388609 bytes"));
        let at_limit = "x".repeat(MAX_PROMPT_BYTES);
        let secrets = build_secrets("job", "ns", &labels(), &BTreeMap::new(), &at_limit).unwrap();
        assert_eq!(secrets.len(), MAX_PROMPT_BYTES.div_ceil(PROMPT_CHUNK_BYTES));
    }

    #[test]
    fn secrets_refuse_env_names_that_are_no_secret_keys() {
        for name in ["prompt", "A B", ""] {
            let env = [(name.to_owned(), "v".to_owned())].into();
            let err = build_secrets("job", "ns", &labels(), &env, "p").unwrap_err();
            assert_eq!(err, Error::SecretEnvName { name: name.into() });
        }
    }

    #[test]
    fn owner_reference_needs_the_created_jobs_uid() {
        let mut job = job_with(&config(), &Inherited::default(), 1);
        assert_eq!(owner_reference(&job), None);
        job.metadata.uid = Some("u-1".into());
        let owner = owner_reference(&job).unwrap();
        assert_eq!(owner.uid, "u-1");
        assert_eq!(owner.name, "ac-a1-r1-abcdef");
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str()),
            ("batch/v1", "Job")
        );
        assert_eq!(owner.controller, Some(false));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }

    #[test]
    fn inherit_reads_the_paperclip_container_and_pod_settings() {
        let inherited = inherit_from_pod(&fixture("paperclip-pod.json"));
        assert_eq!(
            inherited.image.as_deref(),
            Some("registry.example.com/paperclip/server:2026.916.1")
        );
        assert_eq!(inherited.image_pull_secrets[0].name, "registry-credentials");
        assert_eq!(inherited.dns_policy.as_deref(), Some("None"));
        assert_eq!(
            inherited.dns_config.as_ref().unwrap().nameservers,
            Some(vec!["10.96.0.10".into()])
        );
        assert_eq!(
            inherited.workspace_claim,
            Some(ClaimMount {
                claim_name: "paperclip-shared".into(),
                sub_path: Some("home".into())
            })
        );
        assert_eq!(
            inherited.secret_volumes.len(),
            1,
            "the service-account token is not copied"
        );
        assert_eq!(
            inherited.secret_volumes[0].mount_path,
            "/etc/git-credentials"
        );
        assert_eq!(
            inherited.secret_volumes[0].source.secret_name.as_deref(),
            Some("git-credentials")
        );
        let literal = [
            ("PAPERCLIP_PUBLIC_URL", "https://paperclip.example.com"),
            ("EMPTY_FLAG", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(inherited.literal_env, literal);
        let value_from: Vec<&str> = inherited
            .value_from_env
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            value_from,
            ["ANTHROPIC_API_KEY", "POD_NAMESPACE", "MEMORY_LIMIT"]
        );
        let memory = &inherited.value_from_env[2].1;
        assert_eq!(
            memory.resource_field_ref.as_ref().unwrap().container_name,
            None
        );
        assert_eq!(
            inherited.env_from[0].config_map_ref.as_ref().unwrap().name,
            "paperclip-config"
        );
        assert_eq!(inherited.node_selector["pool"], "agents");
        assert_eq!(inherited.tolerations.len(), 2);
    }

    #[test]
    fn inherit_from_a_bare_pod_takes_the_first_container_and_nothing_else() {
        let inherited = inherit_from_pod(&fixture("plain-pod.json"));
        assert_eq!(
            inherited,
            Inherited {
                image: Some("ghcr.io/example/paperclip:latest".into()),
                ..Inherited::default()
            }
        );
    }

    #[test]
    fn inherited_pieces_reach_the_pod_and_config_wins_on_node_selector_keys() {
        let inherited = inherit_from_pod(&fixture("paperclip-pod.json"));
        let toleration = Toleration {
            key: Some("gpu".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        };
        let config = Config {
            node_selector: [("pool".to_owned(), "big".to_owned())].into(),
            tolerations: vec![toleration.clone(), inherited.tolerations[0].clone()],
            ..config()
        };
        let job = job_with(&config, &inherited, 1);
        let spec = pod_spec(&job);
        assert_eq!(spec.node_selector.as_ref().unwrap()["pool"], "big");
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["kubernetes.io/os"],
            "linux"
        );
        assert_eq!(spec.tolerations.as_ref().unwrap().len(), 3);
        assert_eq!(spec.tolerations.as_ref().unwrap()[2], toleration);
        assert_eq!(
            spec.image_pull_secrets,
            Some(inherited.image_pull_secrets.clone())
        );
        assert_eq!(spec.dns_config, inherited.dns_config);
        let claude = container(&job, "claude");
        let workspace = mount_of(claude, "/paperclip");
        assert_eq!(workspace.sub_path.as_deref(), Some("home"));
        let claim = volume(&job, &workspace.name)
            .persistent_volume_claim
            .as_ref()
            .unwrap();
        assert_eq!(claim.claim_name, "paperclip-shared");
        let creds = mount_of(claude, "/etc/git-credentials");
        assert_eq!(creds.read_only, Some(true));
        let source = volume(&job, &creds.name).secret.as_ref().unwrap();
        assert_eq!(source.secret_name.as_deref(), Some("git-credentials"));
        assert_eq!(claude.env_from, Some(inherited.env_from.clone()));
    }

    #[test]
    fn workspace_prefers_the_inherited_claim_then_pvc_name_then_empty_dir() {
        let with_pvc = Config {
            pvc_name: Some("shared".into()),
            ..config()
        };
        let inherited = inherit_from_pod(&fixture("paperclip-pod.json"));
        assert_eq!(
            workspace(&with_pvc, &inherited),
            Workspace::Claim(inherited.workspace_claim.clone().unwrap())
        );
        assert_eq!(
            workspace(&with_pvc, &Inherited::default()),
            Workspace::Claim(ClaimMount {
                claim_name: "shared".into(),
                sub_path: None
            })
        );
        assert_eq!(
            workspace(&config(), &Inherited::default()),
            Workspace::EmptyDir
        );
    }

    #[test]
    fn image_comes_from_config_else_the_paperclip_pod_else_a_clear_error() {
        let inherited = Inherited {
            image: Some("inherited:1".into()),
            ..Inherited::default()
        };
        assert_eq!(
            image(&config(), &inherited),
            Ok("paperclip/claude-agent:dev")
        );
        let no_image = Config {
            image: None,
            ..config()
        };
        assert_eq!(image(&no_image, &inherited), Ok("inherited:1"));
        let err = image(&no_image, &Inherited::default()).unwrap_err();
        assert!(err.to_string().contains("set `image`"));
    }

    #[test]
    fn service_account_token_is_mounted_only_for_a_named_service_account() {
        let job = job_with(&config(), &Inherited::default(), 1);
        assert_eq!(pod_spec(&job).automount_service_account_token, Some(false));
        let named = Config {
            service_account_name: Some("agent".into()),
            ..config()
        };
        let job = job_with(&named, &Inherited::default(), 1);
        assert_eq!(
            pod_spec(&job).service_account_name.as_deref(),
            Some("agent")
        );
        assert_eq!(pod_spec(&job).automount_service_account_token, None);
    }
}
