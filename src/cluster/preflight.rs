//! `testEnvironment` (SPEC §8): what an operator must fix before a run can work, as a list of
//! checks against the real API. Reads and asks only: the one write is a server-side dry run that
//! the apiserver never persists. Every outcome is a check; nothing here returns `Err`.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::client;
use crate::error::chain;
use crate::plan::config::Config;
use crate::plan::manifest::{self, Inherited, Workspace};

/// How long one step may wait for the apiserver. An environment test is interactive: an
/// apiserver that does not answer within this is reported, not waited for.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every (API group, resource, verb) a run uses (`run.rs` and `cluster/*`) plus what this test
/// reads; `deploy/rbac.yaml` grants exactly these.
pub const REQUIRED_ACCESS: &[(&str, &str, &str)] = &[
    ("batch", "jobs", "create"),
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "delete"),
    ("batch", "jobs", "patch"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods/log", "get"),
    ("", "secrets", "create"),
    ("", "secrets", "get"),
    ("", "secrets", "delete"),
    ("", "secrets", "patch"),
    ("", "persistentvolumeclaims", "get"),
];

/// How serious a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine; said for the record.
    Info,
    /// Runs work, but not as well as they could.
    Warn,
    /// Runs will fail until this is fixed.
    Error,
}

/// One finding, in Paperclip's `AdapterEnvironmentCheck` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier (`k8s_permission_missing`).
    pub code: &'static str,
    /// Severity.
    pub level: Level,
    /// What was found.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(code: &'static str, level: Level, message: impl Into<String>) -> Self {
        Self {
            code,
            level,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The overall verdict: `fail` with any error, `warn` with any warning, else `pass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to fix.
    Pass,
    /// Runs work, with caveats.
    Warn,
    /// Runs will fail.
    Fail,
}

/// What `testEnvironment` resolves with (Paperclip's `AdapterEnvironmentTestResult`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always `claude_k8s`.
    pub adapter_type: &'static str,
    /// Derived from the checks.
    pub status: Status,
    /// In the order they ran.
    pub checks: Vec<Check>,
    /// When the test ended (RFC 3339).
    pub tested_at: String,
}

impl Report {
    /// A report of `checks`, its status derived from their levels.
    pub fn new(checks: Vec<Check>) -> Self {
        let worst = checks.iter().map(|c| c.level).max_by_key(|l| *l as u8);
        Self {
            adapter_type: "claude_k8s",
            status: match worst {
                Some(Level::Error) => Status::Fail,
                Some(Level::Warn) => Status::Warn,
                _ => Status::Pass,
            },
            checks,
            tested_at: jiff::Timestamp::now().to_string(),
        }
    }
}

/// Runs every SPEC §8 check for the adapter config `raw` (`ctx.config`).
pub async fn test_environment(raw: &Value) -> Report {
    let (config, warnings) = Config::parse(raw);
    let mut checks: Vec<Check> = warnings
        .into_iter()
        .map(|w| {
            Check::new(
                "k8s_config_value_unusable",
                Level::Warn,
                format!("config key `{}`: {}", w.key, w.message),
            )
            .hint(format!("fix or remove `{}` in the adapter config", w.key))
        })
        .collect();
    let cluster = match client::connect(config.kubeconfig.as_deref()).await {
        Ok(cluster) => cluster,
        Err(err) => {
            checks.push(unreachable(chain(&err)));
            return Report::new(checks);
        }
    };
    let client = cluster.client().clone();
    let reachable = check_reachable(&client).await;
    let stop = reachable.level == Level::Error;
    checks.push(reachable);
    if stop {
        return Report::new(checks);
    }
    let inherited = match bounded(cluster.self_pod()).await {
        Ok(pod) => pod.map_or_else(Inherited::default, |pod| manifest::inherit_from_pod(&pod)),
        Err(err) => {
            checks.push(
                Check::new("k8s_self_pod_unreadable", Level::Warn, err.to_string())
                    .hint("the Job cannot inherit image, volumes and env from the Paperclip pod; grant `get` on pods"),
            );
            Inherited::default()
        }
    };
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace().to_owned());
    checks.extend(check_cluster(&client, &namespace, &config, &inherited).await);
    Report::new(checks)
}

/// `k8s_api_reachable`, or the `k8s_api_unreachable` error that stops the test.
async fn check_reachable(client: &Client) -> Check {
    match bounded(client.apiserver_version()).await {
        Ok(version) => Check::new(
            "k8s_api_reachable",
            Level::Info,
            format!(
                "Kubernetes API reachable ({}, v{}.{})",
                version.git_version, version.major, version.minor
            ),
        ),
        Err(err) => unreachable(err.to_string()),
    }
}

/// The checks that need a reachable API, in the order the operator reads them.
async fn check_cluster(
    client: &Client,
    namespace: &str,
    config: &Config,
    inherited: &Inherited,
) -> Vec<Check> {
    let mut checks = vec![check_namespace(client, namespace).await];
    checks.extend(check_access(client, namespace).await);
    checks.push(check_secret(client, namespace, &config.secret_ref).await);
    checks.push(check_workspace(client, namespace, config, inherited).await);
    checks.push(match manifest::image(config, inherited) {
        Ok(image) => Check::new(
            "k8s_image",
            Level::Info,
            format!("claude container image: {image}"),
        ),
        Err(err) => Check::new("k8s_image_missing", Level::Error, err.to_string())
            .hint("set `image` to an image that contains the `claude` CLI"),
    });
    checks
}

fn unreachable(message: String) -> Check {
    Check::new("k8s_api_unreachable", Level::Error, message).hint(
        "check `kubeconfig` (or the pod's service account) and that the API server answers from here",
    )
}

/// Why a step got no answer to use.
enum Step<E> {
    /// The call failed.
    Failed(E),
    /// It outlasted [`STEP_TIMEOUT`].
    TimedOut,
}

impl<E: std::error::Error + 'static> std::fmt::Display for Step<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(err) => f.write_str(&chain(err)),
            Self::TimedOut => write!(
                f,
                "the Kubernetes API did not answer within {} s",
                STEP_TIMEOUT.as_secs()
            ),
        }
    }
}

impl Step<kube::Error> {
    /// The apiserver's HTTP status, when it refused the request.
    fn status(&self) -> Option<u16> {
        match self {
            Self::Failed(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        }
    }
}

/// `call`, bounded by [`STEP_TIMEOUT`].
async fn bounded<T, E>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Step<E>> {
    match tokio::time::timeout(STEP_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Step::Failed(err)),
        Err(_) => Err(Step::TimedOut),
    }
}

/// Reading a namespace needs a ClusterRole the least-privilege Role does not give, so a
/// refusal falls back to a dry-run Secret create, which the apiserver answers 404 for a missing
/// namespace without persisting anything.
async fn check_namespace(client: &Client, namespace: &str) -> Check {
    let exists = |how: &str| {
        Check::new(
            "k8s_namespace_exists",
            Level::Info,
            format!("namespace {namespace} exists ({how})"),
        )
    };
    let missing = || {
        Check::new(
            "k8s_namespace_missing",
            Level::Error,
            format!("namespace {namespace} does not exist"),
        )
        .hint("create it, or set `namespace` to the namespace where agent Jobs should run")
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match bounded(namespaces.get_opt(namespace)).await {
        Ok(Some(_)) => return exists("read"),
        Ok(None) => return missing(),
        Err(err) if err.status() != Some(403) => {
            return Check::new(
                "k8s_namespace_unknown",
                Level::Warn,
                format!("cannot tell whether namespace {namespace} exists: {err}"),
            );
        }
        Err(_) => {}
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let probe = Secret {
        metadata: ObjectMeta {
            generate_name: Some("claude-k8s-preflight-".into()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match bounded(secrets.create(&dry_run, &probe)).await {
        Ok(_) => exists("dry-run create"),
        Err(err) if err.status() == Some(404) => missing(),
        Err(err) => Check::new(
            "k8s_namespace_unknown",
            Level::Warn,
            format!("cannot tell whether namespace {namespace} exists: neither reading it nor a dry-run Secret create is allowed: {err}"),
        ),
    }
}

/// One SelfSubjectAccessReview per entry of [`REQUIRED_ACCESS`], all at once; one error per
/// permission missing.
async fn check_access(client: &Client, namespace: &str) -> Vec<Check> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answers = join_all(REQUIRED_ACCESS.iter().map(|&(group, resource, verb)| {
        let (resource, subresource) = resource
            .split_once('/')
            .map_or((resource, None), |(r, s)| (r, Some(s)));
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    resource: Some(resource.to_owned()),
                    subresource: subresource.map(str::to_owned),
                    verb: Some(verb.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let reviews = reviews.clone();
        async move { bounded(reviews.create(&PostParams::default(), &review)).await }
    }))
    .await;
    let mut checks = Vec::new();
    for (&(group, resource, verb), answer) in REQUIRED_ACCESS.iter().zip(answers) {
        let what = match group {
            "" => resource.to_owned(),
            group => format!("{resource}.{group}"),
        };
        match answer.map(|r| r.status.is_some_and(|s| s.allowed)) {
            Ok(true) => {}
            Ok(false) => checks.push(
                Check::new(
                    "k8s_permission_missing",
                    Level::Error,
                    format!("not allowed to {verb} {what} in namespace {namespace}"),
                )
                .hint("bind the Role in deploy/rbac.yaml to the identity the adapter uses"),
            ),
            Err(err) => checks.push(Check::new(
                "k8s_permission_unknown",
                Level::Error,
                format!(
                    "cannot check whether {verb} {what} is allowed in namespace {namespace}: {err}"
                ),
            )),
        }
    }
    if checks.is_empty() {
        let count = REQUIRED_ACCESS.len();
        checks.push(Check::new(
            "k8s_permissions_ok",
            Level::Info,
            format!("all {count} permissions a run uses are granted in namespace {namespace}"),
        ));
    }
    checks
}

async fn check_secret(client: &Client, namespace: &str, name: &str) -> Check {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match bounded(secrets.get_opt(name)).await {
        Ok(Some(_)) => Check::new(
            "k8s_secret_found",
            Level::Info,
            format!("Secret {namespace}/{name} (`secretRef`) exists"),
        ),
        Ok(None) => Check::new(
            "k8s_secret_missing",
            Level::Warn,
            format!("Secret {namespace}/{name} (`secretRef`) does not exist"),
        )
        .hint("create it with the agents' credentials (e.g. ANTHROPIC_API_KEY), or set `secretRef` to the Secret that holds them"),
        Err(err) => Check::new(
            "k8s_secret_unreadable",
            Level::Warn,
            format!("cannot read Secret {namespace}/{name} (`secretRef`): {err}"),
        ),
    }
}

/// The PVC at `/paperclip` must be ReadWriteMany: Jobs on other nodes share it with the server.
async fn check_workspace(
    client: &Client,
    namespace: &str,
    config: &Config,
    inherited: &Inherited,
) -> Check {
    let claim = match manifest::workspace(config, inherited) {
        Workspace::Claim(claim) => claim.claim_name,
        Workspace::EmptyDir => {
            return Check::new(
                "k8s_pvc_none",
                Level::Warn,
                "no PVC at /paperclip (none inherited from a Paperclip pod, no `pvcName`): each Job gets an emptyDir, so sessions cannot be resumed",
            )
            .hint("set `pvcName` to a ReadWriteMany PersistentVolumeClaim in the Jobs' namespace");
        }
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match bounded(claims.get_opt(&claim)).await {
        Ok(Some(pvc)) => {
            let modes = pvc.spec.and_then(|s| s.access_modes).unwrap_or_default();
            if modes.iter().any(|m| m == "ReadWriteMany") {
                Check::new(
                    "k8s_pvc_rwx",
                    Level::Info,
                    format!("PVC {namespace}/{claim} at /paperclip is ReadWriteMany"),
                )
            } else {
                Check::new(
                    "k8s_pvc_not_rwx",
                    Level::Warn,
                    format!("PVC {namespace}/{claim} at /paperclip is {modes:?}, not ReadWriteMany: Jobs on other nodes cannot mount it"),
                )
                .hint("use a ReadWriteMany storage class (NFS, CephFS, EFS, Filestore ...)")
            }
        }
        Ok(None) => Check::new(
            "k8s_pvc_missing",
            Level::Warn,
            format!(
                "PVC {namespace}/{claim} for /paperclip does not exist: Job pods will not start"
            ),
        )
        .hint("create the PVC, or fix `pvcName`"),
        Err(err) => Check::new(
            "k8s_pvc_unreadable",
            Level::Warn,
            format!("cannot read PVC {namespace}/{claim} for /paperclip: {err}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::cleanup::mock::{client, status, ApiServerVerifier};
    use http::Response;
    use kube::client::Body;
    use serde_json::json;

    const SSAR_URI: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews?";
    const NS: &str = "/api/v1/namespaces/ns";
    const DRY_RUN: &str = "/api/v1/namespaces/ns/secrets?&dryRun=All";
    const SECRET: &str = "/api/v1/namespaces/ns/secrets/paperclip-secrets";
    const PVC: &str = "/api/v1/namespaces/ns/persistentvolumeclaims/shared";

    /// Answers the [`REQUIRED_ACCESS`] reviews, denying `denied` (`verb resource`), and returns
    /// the (verb, resource) pairs asked about, in order.
    async fn answer_reviews(server: &mut ApiServerVerifier, denied: &[&str]) -> Vec<String> {
        let mut asked = Vec::new();
        for _ in REQUIRED_ACCESS {
            let (request, send) = server.0.next_request().await.expect("a review");
            assert_eq!(request.method().as_str(), "POST");
            assert_eq!(request.uri().to_string(), SSAR_URI);
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let review: Value = serde_json::from_slice(&bytes).unwrap();
            let attrs = &review["spec"]["resourceAttributes"];
            assert_eq!(attrs["namespace"], "ns");
            let mut resource = attrs["resource"].as_str().unwrap().to_owned();
            if let Some(sub) = attrs["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let pair = format!("{} {resource}", attrs["verb"].as_str().unwrap());
            let allowed = !denied.contains(&pair.as_str());
            let mut answer = review.clone();
            answer["status"] = json!({"allowed": allowed});
            let response = Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            send.send_response(response);
            asked.push(pair);
        }
        asked
    }

    fn pvc(modes: &[&str]) -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "shared", "namespace": "ns"},
               "spec": {"accessModes": modes}})
    }

    fn namespace() -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    }

    fn secret() -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "paperclip-secrets"}})
    }

    fn config(raw: Value) -> Config {
        Config::parse(&raw).0
    }

    fn codes(checks: &[Check]) -> Vec<(&'static str, Level)> {
        checks.iter().map(|c| (c.code, c.level)).collect()
    }

    #[tokio::test]
    async fn an_admin_with_everything_in_place_passes() {
        let (client, mut server) = client();
        let config = config(json!({"image": "claude:1", "pvcName": "shared"}));
        let checks = tokio::spawn(async move {
            check_cluster(&client, "ns", &config, &Inherited::default()).await
        });
        server.expect("GET", NS, 200, namespace()).await;
        let asked = answer_reviews(&mut server, &[]).await;
        assert!(asked.contains(&"get pods/log".to_owned()), "{asked:?}");
        assert!(asked.contains(&"watch jobs".to_owned()), "{asked:?}");
        server.expect("GET", SECRET, 200, secret()).await;
        server
            .expect("GET", PVC, 200, pvc(&["ReadWriteMany"]))
            .await;
        let checks = checks.await.unwrap();
        assert_eq!(
            codes(&checks),
            [
                ("k8s_namespace_exists", Level::Info),
                ("k8s_permissions_ok", Level::Info),
                ("k8s_secret_found", Level::Info),
                ("k8s_pvc_rwx", Level::Info),
                ("k8s_image", Level::Info),
            ]
        );
        assert_eq!(Report::new(checks).status, Status::Pass);
    }

    #[tokio::test]
    async fn each_missing_permission_is_one_error_naming_verb_and_resource() {
        let (client, mut server) = client();
        let config = config(json!({"image": "claude:1", "pvcName": "shared"}));
        let checks = tokio::spawn(async move {
            check_cluster(&client, "ns", &config, &Inherited::default()).await
        });
        // Under the least-privilege Role, namespaces cannot be read: a dry-run create decides.
        server
            .expect("GET", NS, 403, status(403, "Forbidden"))
            .await;
        let probe = server.expect("POST", DRY_RUN, 201, secret()).await;
        assert_eq!(probe["metadata"]["generateName"], "claude-k8s-preflight-");
        answer_reviews(&mut server, &["watch jobs", "get pods/log"]).await;
        server
            .expect("GET", SECRET, 404, status(404, "NotFound"))
            .await;
        server
            .expect("GET", PVC, 200, pvc(&["ReadWriteOnce"]))
            .await;
        let checks = checks.await.unwrap();
        let missing: Vec<&str> = checks
            .iter()
            .filter(|c| c.code == "k8s_permission_missing")
            .map(|c| c.message.as_str())
            .collect();
        assert_eq!(
            missing,
            [
                "not allowed to watch jobs.batch in namespace ns",
                "not allowed to get pods/log in namespace ns",
            ]
        );
        assert!(checks.iter().all(|c| c.code != "k8s_permissions_ok"));
        assert_eq!(codes(&checks)[0], ("k8s_namespace_exists", Level::Info));
        assert!(codes(&checks).contains(&("k8s_secret_missing", Level::Warn)));
        assert_eq!(Report::new(checks).status, Status::Fail);
    }

    #[tokio::test]
    async fn a_missing_namespace_pvc_and_image_are_reported() {
        let (client, mut server) = client();
        let config = config(json!({"pvcName": "shared"}));
        let checks = tokio::spawn(async move {
            check_cluster(&client, "ns", &config, &Inherited::default()).await
        });
        server
            .expect("GET", NS, 403, status(403, "Forbidden"))
            .await;
        server
            .expect("POST", DRY_RUN, 404, status(404, "NotFound"))
            .await;
        answer_reviews(&mut server, &[]).await;
        server.expect("GET", SECRET, 200, secret()).await;
        server
            .expect("GET", PVC, 404, status(404, "NotFound"))
            .await;
        let checks = checks.await.unwrap();
        assert_eq!(
            codes(&checks),
            [
                ("k8s_namespace_missing", Level::Error),
                ("k8s_permissions_ok", Level::Info),
                ("k8s_secret_found", Level::Info),
                ("k8s_pvc_missing", Level::Warn),
                ("k8s_image_missing", Level::Error),
            ]
        );
    }

    #[tokio::test]
    async fn no_pvc_at_all_is_a_warning_and_an_inherited_image_counts() {
        let (client, mut server) = client();
        let inherited = Inherited {
            image: Some("paperclip:1".into()),
            ..Inherited::default()
        };
        let checks = tokio::spawn(async move {
            check_cluster(&client, "ns", &Config::default(), &inherited).await
        });
        server.expect("GET", NS, 200, namespace()).await;
        answer_reviews(&mut server, &[]).await;
        server
            .expect("GET", SECRET, 403, status(403, "Forbidden"))
            .await;
        let checks = checks.await.unwrap();
        let found = codes(&checks);
        assert_eq!(found[2], ("k8s_secret_unreadable", Level::Warn));
        assert_eq!(found[3], ("k8s_pvc_none", Level::Warn));
        assert_eq!(checks[4].message, "claude container image: paperclip:1");
        assert_eq!(Report::new(checks).status, Status::Warn);
    }

    #[tokio::test(start_paused = true)]
    async fn an_apiserver_that_does_not_answer_is_unreachable() {
        let (client, mut server) = client();
        let check = tokio::spawn(async move { check_reachable(&client).await });
        server.hang().await;
        let check = check.await.unwrap();
        assert_eq!(
            (check.code, check.level),
            ("k8s_api_unreachable", Level::Error)
        );
        assert_eq!(
            check.message,
            "the Kubernetes API did not answer within 10 s"
        );
    }

    #[tokio::test]
    async fn an_unusable_kubeconfig_stops_the_test_after_the_config_warnings() {
        let report = test_environment(&json!({
            "kubeconfig": "/nonexistent/kubeconfig",
            "timeoutSec": "soon",
        }))
        .await;
        assert_eq!(report.status, Status::Fail);
        assert_eq!(
            codes(&report.checks),
            [
                ("k8s_config_value_unusable", Level::Warn),
                ("k8s_api_unreachable", Level::Error),
            ]
        );
        assert!(report.checks[0]
            .message
            .starts_with("config key `timeoutSec`: "));
        assert!(report.checks[1].message.contains("/nonexistent/kubeconfig"));
        let js = serde_json::to_value(&report).unwrap();
        assert_eq!(js["adapterType"], "claude_k8s");
        assert_eq!(js["status"], "fail");
        assert_eq!(js["checks"][1]["level"], "error");
        assert!(js["testedAt"].as_str().unwrap().ends_with('Z'));
    }
}
