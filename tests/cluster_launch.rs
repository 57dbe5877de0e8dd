//! Real-cluster tests of the manifests, launch, guard and cleanup: each test creates its own
//! namespace on the testbed (`testbed/up`), runs Jobs built by `plan::manifest` and deletes the
//! namespace again. The claude container's command is swapped for busybox tools so these tests
//! need neither the agent image nor the model API; the full run is tested end to end elsewhere.
//!
//! Run: `cargo test --test cluster_launch -- --ignored` (kubeconfig: `$PAPERCLIP_TEST_KUBECONFIG`,
//! else the testbed's admin kubeconfig). A missing cluster fails these tests.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    ServiceAccount,
};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::Client;
use paperclip_claude_k8s::cluster::client::PodIdentity;
use paperclip_claude_k8s::cluster::guard::{self, GuardDecision, ThisRun};
use paperclip_claude_k8s::cluster::{cleanup, client, launch};
use paperclip_claude_k8s::plan::config::{Config, Resources};
use paperclip_claude_k8s::plan::manifest::{self, Inherited, JobInput};
use sha2::{Digest, Sha256};

/// The testbed's admin kubeconfig (`testbed/up` writes it).
const TESTBED_KUBECONFIG: &str = "/var/tmp/paperclip-claude-k8s-testbed/run/admin.kubeconfig";

/// Safety net for waits on the cluster, not an assertion: a shared 2-core machine can be slow to
/// start pods, but a Job that has not ended after this is stuck.
const WAIT_LIMIT: Duration = Duration::from_secs(300);

const AGENT: &str = "agent-1";

fn kubeconfig() -> String {
    std::env::var("PAPERCLIP_TEST_KUBECONFIG").unwrap_or_else(|_| TESTBED_KUBECONFIG.to_owned())
}

/// Runs `body` in a fresh namespace and deletes the namespace afterwards, even if `body` panics.
async fn in_namespace<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(client::Cluster, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cluster = client::connect(Some(&kubeconfig()))
        .await
        .expect("testbed cluster (run testbed/up)");
    let client = cluster.client().clone();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let ns = format!("{prefix}-{}-{nanos:x}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    // Pods that mount a token cannot be admitted before the service-account controllers made
    // `default` and (on 1.20, the testbed) its token Secret.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let with_token = |sa: Option<&ServiceAccount>| {
        sa.and_then(|sa| sa.secrets.as_ref())
            .is_some_and(|secrets| !secrets.is_empty())
    };
    wait(await_condition(accounts, "default", with_token)).await;

    let outcome = std::panic::AssertUnwindSafe(body(cluster, ns.clone()))
        .catch_unwind()
        .await;
    namespaces
        .delete(&ns, &DeleteParams::background())
        .await
        .expect("delete namespace");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn wait<T, E: std::fmt::Debug>(future: impl std::future::Future<Output = Result<T, E>>) -> T {
    tokio::time::timeout(WAIT_LIMIT, future)
        .await
        .expect("cluster did not get there within WAIT_LIMIT")
        .expect("watch failed")
}

fn config() -> Config {
    Config {
        image: Some("busybox:1.36".into()),
        resources: Resources {
            requests_cpu: "10m".into(),
            requests_memory: "16Mi".into(),
            limits_cpu: "500m".into(),
            limits_memory: "128Mi".into(),
        },
        ..Config::default()
    }
}

fn labels(run: &str) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/managed-by", "paperclip"),
        ("paperclip.io/adapter-type", "claude_k8s"),
        ("paperclip.io/agent-id", AGENT),
        ("paperclip.io/run-id", run),
        ("paperclip.io/task-id", "task-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A Job and its Secrets from the real builders; `script` replaces the claude CLI and sees the
/// same positional args (`$@`) and the assembled prompt file.
fn manifests(ns: &str, run: &str, prompt: &str, args: &[&str], script: &str) -> (Job, Vec<Secret>) {
    let name = format!("ac-{AGENT}-{run}");
    let labels = labels(run);
    let secret_env = [("PAPERCLIP_API_KEY".to_owned(), "token".to_owned())].into();
    let secrets = manifest::build_secrets(&name, ns, &labels, &secret_env, prompt).unwrap();
    let config = config();
    let mut job = manifest::build_job(&JobInput {
        name: &name,
        namespace: ns,
        labels: &labels,
        image: "busybox:1.36",
        init_image: manifest::DEFAULT_INIT_IMAGE,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        cwd: "/paperclip",
        env: vec![],
        prompt_parts: secrets.len(),
        config: &config,
        inherited: &Inherited::default(),
    });
    let pod = job.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    let command = pod.containers[0].command.as_mut().unwrap();
    assert!(command[2].contains("claude \"$@\" < /var/run/paperclip/prompt"));
    command[2] = script.to_owned();
    (job, secrets)
}

/// Launches, waits for the Job to end, and returns it with the claude container's log.
async fn run_to_end(client: &Client, ns: &str, job: Job, secrets: Vec<Secret>) -> (Job, String) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let created = launch::launch(&secret_api, &jobs, job, secrets)
        .await
        .expect("launch");
    let name = created.metadata.name.clone().unwrap();
    let ended = |job: Option<&Job>| job.is_some_and(|j| !guard::is_live(j));
    let job = wait(await_condition(jobs, &name, ended)).await.unwrap();
    let pod = job_pod(client, ns, &name).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = LogParams {
        container: Some("claude".into()),
        ..LogParams::default()
    };
    let log = pods
        .logs(pod.metadata.name.as_deref().unwrap(), &params)
        .await
        .unwrap();
    let status = job.status.as_ref().unwrap();
    assert_eq!(
        status.succeeded,
        Some(1),
        "Job failed: {status:?}\npod: {:?}",
        pod.status
    );
    (job, log)
}

async fn job_pod(client: &Client, ns: &str, job: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("job-name={job}");
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "one pod per Job (backoffLimit 0)");
    list.items.remove(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn two_mebibyte_prompt_reaches_the_container_byte_identical_and_secrets_follow_the_job() {
    in_namespace("launch-big", |cluster, ns| async move {
        let client = cluster.client().clone();
        // Multi-byte characters, so chunk boundaries fall inside UTF-8 sequences.
        let unit = "Größe ✓ 漢字 line\nü";
        let prompt = unit.repeat(2 * 1024 * 1024 / unit.len() + 1);
        assert!(!prompt.is_char_boundary(manifest::PROMPT_CHUNK_BYTES));
        let script = "exec sha256sum /var/run/paperclip/prompt";
        let (job, secrets) = manifests(&ns, "big", &prompt, &[], script);
        assert_eq!(secrets.len(), 3);
        let (job, log) = run_to_end(&client, &ns, job, secrets).await;
        assert_eq!(
            log,
            format!(
                "{}  /var/run/paperclip/prompt\n",
                sha256_hex(prompt.as_bytes())
            )
        );

        let uid = job.metadata.uid.clone().unwrap();
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let name = job.metadata.name.clone().unwrap();
        let mut secret_uids = Vec::new();
        for n in 0..3 {
            let secret = secret_api.get(&format!("{name}-{n}")).await.unwrap();
            let owners = secret.metadata.owner_references.clone().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(
                (owners[0].uid.as_str(), owners[0].kind.as_str()),
                (uid.as_str(), "Job")
            );
            secret_uids.push(secret.metadata.uid.unwrap());
        }

        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        cleanup::delete_job(&jobs, &name).await.unwrap();
        cleanup::delete_job(&jobs, &name)
            .await
            .expect("a second delete is a 404: success");
        // Only the garbage collector deletes the Secrets now: they are owned by the Job.
        for (n, secret_uid) in secret_uids.iter().enumerate() {
            let gone = conditions::is_deleted(secret_uid);
            wait(await_condition(
                secret_api.clone(),
                &format!("{name}-{n}"),
                gone,
            ))
            .await;
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn shell_metacharacters_and_non_ascii_survive_in_prompt_and_argv_under_restricted_security() {
    in_namespace("launch-quote", |cluster, ns| async move {
        let client = cluster.client().clone();
        let prompt =
            "It's \"quoted\" $(rm -rf /) `id` $HOME \\n\n\ttabs; ünïcödé ✓ 🚀\r\nno newline at end";
        let args = ["--append-system-prompt-file", "it's $(x) `y` \"z\"", "ü ✓"];
        // The file's hash, not `cat`: the container log drops a '\r' before '\n'.
        let script =
            "printf '[%s]\\n' \"$@\"; id -u; id -g; exec sha256sum < /var/run/paperclip/prompt";
        let (job, secrets) = manifests(&ns, "quote", prompt, &args, script);
        let (job, log) = run_to_end(&client, &ns, job, secrets).await;
        let expected = format!(
            "[--append-system-prompt-file]\n[it's $(x) `y` \"z\"]\n[ü ✓]\n1000\n1000\n{}  -\n",
            sha256_hex(prompt.as_bytes())
        );
        assert_eq!(log, expected);

        let pod = job_pod(&client, &ns, job.metadata.name.as_deref().unwrap()).await;
        let spec = pod.spec.unwrap();
        let pod_sc = spec.security_context.unwrap();
        assert_eq!(pod_sc.run_as_non_root, Some(true));
        assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(spec.host_network, None);
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let sc = c.security_context.clone().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        }
        let env_literals: Vec<_> = spec.containers[0]
            .env
            .iter()
            .flatten()
            .filter(|e| e.value.is_some())
            .collect();
        assert!(
            env_literals.is_empty(),
            "no literal env carries a secret: {env_literals:?}"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn guard_finds_the_live_job_classifies_it_and_relabels_it_for_reattach() {
    in_namespace("launch-guard", |cluster, ns| async move {
        let client = cluster.client().clone();
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let selector = format!("paperclip.io/agent-id={AGENT},paperclip.io/adapter-type=claude_k8s");
        // Runs until its file appears: the test ends it by deleting the Job.
        let (job, secrets) = manifests(&ns, "orphan", "p", &[], "until [ -e /tmp/never ]; do sleep 1; done");
        let created = launch::launch(&secret_api, &jobs, job, secrets).await.unwrap();
        let name = created.metadata.name.clone().unwrap();

        let this = ThisRun {
            run_id: "next".into(),
            task_id: Some("task-1".into()),
            session_id: Some("s-1".into()),
            reattach_orphaned_jobs: true,
        };
        let _lock = guard::lock_agent(AGENT).await;
        let decision = guard::check(&jobs, &selector, &this).await.unwrap();
        let GuardDecision::Reattach(orphan) = decision else {
            panic!("expected reattach, got {decision:?}");
        };
        assert_eq!(orphan.metadata.name.as_deref(), Some(name.as_str()));
        let other_task = ThisRun {
            task_id: Some("task-2".into()),
            ..this.clone()
        };
        let blocked = guard::check(&jobs, &selector, &other_task).await.unwrap();
        assert!(matches!(blocked, GuardDecision::Block(code, _) if code.as_str() == "k8s_concurrent_run_blocked"));

        let relabelled = guard::relabel_for_reattach(&jobs, &orphan, "next", Some("s-1")).await.unwrap();
        let labels = relabelled.metadata.labels.unwrap();
        assert_eq!(labels["paperclip.io/run-id"], "next");
        assert_eq!(labels["paperclip.io/session-id"], "s-1");
        let stale = guard::relabel_for_reattach(&jobs, &orphan, "third", None).await.unwrap_err();
        assert_eq!(stale.code().as_str(), "k8s_concurrent_run_blocked", "the stale resourceVersion loses");
        let same_run = guard::check(&jobs, &selector, &this).await.unwrap();
        assert!(matches!(same_run, GuardDecision::Block(code, _) if code.as_str() == "k8s_concurrent_run_blocked"));

        let mut cleanup = cleanup::CleanupGuard::new(jobs.clone(), secret_api, Some(name.clone()), vec![format!("{name}-0")]);
        cleanup.cleanup().await.unwrap();
        let gone = conditions::is_deleted(created.metadata.uid.as_deref().unwrap());
        wait(await_condition(jobs.clone(), &name, gone)).await;
        assert_eq!(guard::check(&jobs, &selector, &this).await.unwrap(), GuardDecision::Proceed);
    })
    .await;
}

/// A host directory served as a pre-bound ReadWriteMany PVC, like `testbed/pvc.sh` makes.
async fn host_pvc(client: &Client, ns: &str, claim: &str, dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(1000), Some(1000)).unwrap();
    let pv_name = format!("{ns}-{claim}");
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": ns, "name": claim},
            "hostPath": {"path": dir, "type": "Directory"},
        },
    }))
    .unwrap();
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": claim, "namespace": ns},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .unwrap();
    let post = PostParams::default();
    Api::<PersistentVolume>::all(client.clone())
        .create(&post, &pv)
        .await
        .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&post, &pvc)
        .await
        .unwrap();
    pv_name
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn a_job_inherits_the_paperclip_pods_image_volumes_secrets_and_env() {
    in_namespace("launch-inherit", |cluster, ns| async move {
        let client = cluster.client().clone();
        let dir = std::env::temp_dir().join(format!("paperclip-{ns}"));
        let pv_name = host_pvc(&client, &ns, "paperclip-shared", &dir).await;
        let post = PostParams::default();
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "git-credentials"},
            "stringData": {"token": "s3cret"},
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), &ns).create(&post, &secret).await.unwrap();
        let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paperclip-config"},
            "data": {"FROM_CM": "cm-value"},
        }))
        .unwrap();
        Api::<ConfigMap>::namespaced(client.clone(), &ns).create(&post, &config_map).await.unwrap();
        // The Paperclip pod: it only has to exist, the Job reads its spec.
        let paperclip: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paperclip-0"},
            "spec": {
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                "containers": [{
                    "name": "paperclip-server",
                    "image": "busybox:1.36",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "env": [
                        {"name": "LITERAL", "value": "lit"},
                        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    ],
                    "envFrom": [{"configMapRef": {"name": "paperclip-config"}}],
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/paperclip"},
                        {"name": "creds", "mountPath": "/etc/git-credentials", "readOnly": true},
                    ],
                }],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "paperclip-shared"}},
                    {"name": "creds", "secret": {"secretName": "git-credentials"}},
                ],
            },
        }))
        .unwrap();
        Api::<Pod>::namespaced(client.clone(), &ns).create(&post, &paperclip).await.unwrap();
        let identity = PodIdentity {
            namespace: ns.clone(),
            name: "paperclip-0".into(),
        };
        let pod = cluster.read_self_pod(identity).await.unwrap().expect("the Paperclip pod");
        let inherited = manifest::inherit_from_pod(&pod);
        let secret_paths: Vec<&str> = inherited.secret_volumes.iter().map(|s| s.mount_path.as_str()).collect();
        assert_eq!(secret_paths, ["/etc/git-credentials"], "1.20's service-account token Secret stays behind");

        let config = Config { image: None, ..config() };
        let name = "ac-agent-1-inherit";
        let labels = labels("inherit");
        let secrets = manifest::build_secrets(name, &ns, &labels, &BTreeMap::new(), "p").unwrap();
        let literal = inherited.literal_env.iter().map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            value_from: None,
        });
        let value_from = inherited.value_from_env.iter().map(|(name, source)| EnvVar {
            name: name.clone(),
            value: None,
            value_from: Some(source.clone()),
        });
        let env = literal.chain(value_from).collect();
        let mut job = manifest::build_job(&JobInput {
            name,
            namespace: &ns,
            labels: &labels,
            image: manifest::image(&config, &inherited).unwrap(),
            init_image: manifest::DEFAULT_INIT_IMAGE,
            args: vec![],
            cwd: "/paperclip",
            env,
            prompt_parts: secrets.len(),
            config: &config,
            inherited: &inherited,
        });
        let script = "cat /etc/git-credentials/token; echo; echo \"$LITERAL $POD_NS $FROM_CM\"; \
            touch /etc/git-credentials/x 2>/dev/null || echo read-only; \
            echo from-job > /paperclip/from-job; stat -c %u /paperclip/from-job";
        let pod_spec = job.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        pod_spec.containers[0].command.as_mut().unwrap()[2] = script.to_owned();
        let (_, log) = run_to_end(&client, &ns, job, secrets).await;

        assert_eq!(log, format!("s3cret\nlit {ns} cm-value\nread-only\n1000\n"));
        let written = std::fs::read_to_string(dir.join("from-job"));
        Api::<PersistentVolume>::all(client.clone())
            .delete(&pv_name, &DeleteParams::default())
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(written.unwrap(), "from-job\n", "the Job wrote to the Paperclip pod's PVC");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn the_self_pod_is_read_once_per_kubeconfig_and_never_shared_across_kubeconfigs() {
    in_namespace("launch-self", |cluster, ns| async move {
        let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), &ns);
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paperclip-0"},
            "spec": {"containers": [{"name": "paperclip", "image": "busybox:1.36",
                                     "command": ["sleep", "3600"]}]},
        }))
        .unwrap();
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        let identity = PodIdentity {
            namespace: ns.clone(),
            name: "paperclip-0".into(),
        };
        let first = cluster
            .read_self_pod(identity.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.metadata.uid, created.metadata.uid);

        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        pods.delete("paperclip-0", &now).await.unwrap();
        let uid = created.metadata.uid.clone().unwrap();
        wait(await_condition(
            pods.clone(),
            "paperclip-0",
            conditions::is_deleted(&uid),
        ))
        .await;
        let cached = cluster
            .read_self_pod(identity.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            cached.metadata.uid, created.metadata.uid,
            "read once, from the cache after"
        );

        // The same cluster through another kubeconfig file has its own cache entry.
        let copy = std::env::temp_dir().join(format!("kubeconfig-{ns}"));
        std::fs::copy(kubeconfig(), &copy).unwrap();
        let other = client::connect(copy.to_str()).await.unwrap();
        let fresh = other.read_self_pod(identity).await;
        std::fs::remove_file(&copy).unwrap();
        assert_eq!(
            fresh.unwrap(),
            None,
            "the pod is gone, and this kubeconfig never read it"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn a_job_the_apiserver_refuses_leaves_no_secret_behind() {
    in_namespace("launch-refused", |cluster, ns| async move {
        let client = cluster.client().clone();
        let (mut job, secrets) = manifests(&ns, "refused", "p", &[], "true");
        let pod = job.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        pod.restart_policy = Some("Always".into());
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let err = launch::launch(&secret_api, &jobs, job, secrets)
            .await
            .unwrap_err();
        assert_eq!(err.code().as_str(), "k8s_job_create_failed");
        let message = paperclip_claude_k8s::error::chain(&err);
        assert!(
            message.starts_with("cannot create Job ac-agent-1-refused: "),
            "{message}"
        );
        assert!(message.contains("restartPolicy"), "{message}");
        let left = secret_api
            .list(&ListParams::default().labels("paperclip.io/run-id=refused"))
            .await
            .unwrap();
        assert!(
            left.items.is_empty(),
            "Secrets left: {:?}",
            left.items
                .iter()
                .map(|s| &s.metadata.name)
                .collect::<Vec<_>>()
        );
    })
    .await;
}
