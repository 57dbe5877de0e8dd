//! Finding the cluster (SPEC §5 step 2): a client per kubeconfig, the default namespace, and the
//! Paperclip pod itself when the adapter runs in one. Both are cached for the process, keyed so
//! that two kubeconfigs never share an entry (SPEC §9). Makes no API request except the self-pod
//! read.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::Pod;
use kube::config::{InClusterError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client};

use crate::error::ErrorCode;

/// A process-wide map, filled on first use.
type Cache<K, V> = OnceLock<Mutex<HashMap<K, V>>>;

/// Where Kubernetes mounts a pod's service-account credentials.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// No cluster could be configured, or the Paperclip pod could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig named by config `kubeconfig` cannot be used.
    #[error("cannot use kubeconfig {path}")]
    Kubeconfig {
        /// The path as configured.
        path: String,
        /// What was wrong with it.
        #[source]
        source: KubeconfigError,
    },
    /// Running in a pod, but its service-account credentials are unusable.
    #[error("cannot use this pod's service account ({SERVICE_ACCOUNT_DIR})")]
    InCluster(#[source] InClusterError),
    /// Not in a pod, and no usable default kubeconfig.
    #[error("no cluster: not running in a pod, and {path} is not a usable kubeconfig; set `kubeconfig` in the adapter config")]
    NoCluster {
        /// `$KUBECONFIG`, or `~/.kube/config`.
        path: String,
        /// What was wrong with it.
        #[source]
        source: KubeconfigError,
    },
    /// The configuration is readable but no client can be built from it (TLS, auth plugin).
    #[error("cannot build a Kubernetes client for {url}")]
    Client {
        /// The API server URL.
        url: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The Paperclip pod could not be read to inherit its settings.
    #[error("cannot read this Paperclip pod {namespace}/{name}")]
    SelfPod {
        /// Its namespace.
        namespace: String,
        /// Its name (`HOSTNAME`).
        name: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The SPEC error code of this failure.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ClusterUnreachable
    }
}

/// A connected cluster: a client (cheap to clone, shares connections) and its default namespace.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    default_namespace: String,
    kubeconfig: Option<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("default_namespace", &self.default_namespace)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// The Paperclip pod's name and namespace, when the adapter runs in a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodIdentity {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Connects to the cluster: config `kubeconfig` if set (`~/` expands to `$HOME`), else this pod's
/// service account when running in a pod, else `$KUBECONFIG` / `~/.kube/config`. Clients are
/// cached per kubeconfig (and tokio runtime), so later runs reuse connections. Sends no request.
///
/// # Errors
/// [`Error::Kubeconfig`], [`Error::InCluster`], [`Error::NoCluster`] or [`Error::Client`], each
/// naming the file or URL and the problem.
pub async fn connect(kubeconfig: Option<&str>) -> Result<Cluster, Error> {
    static CLIENTS: Cache<(tokio::runtime::Id, Option<String>), Cluster> = OnceLock::new();
    // A client's connection pool lives on the runtime that built it, so the runtime is part of
    // the key (napi has one runtime; tests have one each).
    let key = (
        tokio::runtime::Handle::current().id(),
        kubeconfig.map(str::to_owned),
    );
    if let Some(cluster) = cached(&CLIENTS, &key) {
        return Ok(cluster);
    }
    let config = match kubeconfig {
        Some(path) => load_kubeconfig(path).await?,
        None if in_pod() => kube::Config::incluster().map_err(Error::InCluster)?,
        None => kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|source| Error::NoCluster {
                path: default_kubeconfig_path(),
                source,
            })?,
    };
    let url = config.cluster_url.to_string();
    let default_namespace = if kubeconfig.is_some() {
        config.default_namespace.clone()
    } else {
        namespace_from_env().unwrap_or_else(|| config.default_namespace.clone())
    };
    let client = Client::try_from(config).map_err(|source| Error::Client { url, source })?;
    let cluster = Cluster {
        client,
        default_namespace,
        kubeconfig: key.1.clone(),
    };
    store(&CLIENTS, key, cluster.clone());
    Ok(cluster)
}

impl Cluster {
    /// The client; clone it into `Api`s.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where Jobs go when config `namespace` is unset: `$PAPERCLIP_NAMESPACE`, `$POD_NAMESPACE`,
    /// the service account's namespace, or the kubeconfig context's (an explicit `kubeconfig`
    /// uses only its context's), else `default`.
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// The Paperclip pod, when the adapter runs in one that this cluster knows (`None` outside a
    /// pod, or when the pod is not in this cluster). Cached per (kubeconfig, namespace, name).
    ///
    /// # Errors
    /// [`Error::SelfPod`] when the read fails for another reason than not-found.
    pub async fn self_pod(&self) -> Result<Option<Arc<Pod>>, Error> {
        match pod_identity(
            &|name| std::env::var(name).ok(),
            service_account_namespace(),
        ) {
            Some(identity) => self.read_self_pod(identity).await,
            None => Ok(None),
        }
    }

    /// [`Cluster::self_pod`] for a known identity: reads the pod once per (kubeconfig,
    /// namespace, name) and process.
    ///
    /// # Errors
    /// [`Error::SelfPod`] when the read fails for another reason than not-found.
    pub async fn read_self_pod(&self, identity: PodIdentity) -> Result<Option<Arc<Pod>>, Error> {
        type Key = (Option<String>, PodIdentity);
        static PODS: Cache<Key, Option<Arc<Pod>>> = OnceLock::new();
        let key = (self.kubeconfig.clone(), identity);
        if let Some(pod) = cached(&PODS, &key) {
            return Ok(pod);
        }
        let PodIdentity { namespace, name } = &key.1;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = pods
            .get_opt(name)
            .await
            .map_err(|source| Error::SelfPod {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?
            .map(Arc::new);
        store(&PODS, key, pod.clone());
        Ok(pod)
    }
}

/// The pod the adapter runs in: `HOSTNAME` in `$PAPERCLIP_NAMESPACE`, `$POD_NAMESPACE` or the
/// service account's namespace. `None` when either is unknown (not in a pod).
pub fn pod_identity(
    env: &dyn Fn(&str) -> Option<String>,
    service_account_namespace: Option<String>,
) -> Option<PodIdentity> {
    let non_empty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let name = non_empty("HOSTNAME")?;
    let namespace = non_empty("PAPERCLIP_NAMESPACE")
        .or_else(|| non_empty("POD_NAMESPACE"))
        .or(service_account_namespace)?;
    Some(PodIdentity {
        namespace: namespace.trim().to_owned(),
        name: name.trim().to_owned(),
    })
}

async fn load_kubeconfig(path: &str) -> Result<kube::Config, Error> {
    let err = |source| Error::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(expand_home(path)).map_err(err)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(err)
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new(SERVICE_ACCOUNT_DIR).join("token").exists()
}

fn service_account_namespace() -> Option<String> {
    std::fs::read_to_string(Path::new(SERVICE_ACCOUNT_DIR).join("namespace"))
        .ok()
        .filter(|ns| !ns.trim().is_empty())
}

fn namespace_from_env() -> Option<String> {
    ["PAPERCLIP_NAMESPACE", "POD_NAMESPACE"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|ns| ns.trim().to_owned())
        .find(|ns| !ns.is_empty())
}

fn default_kubeconfig_path() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".to_owned())
}

fn cached<K: Eq + Hash, V: Clone>(cache: &Cache<K, V>, key: &K) -> Option<V> {
    let map = cache.get_or_init(Default::default);
    let map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(key).cloned()
}

fn store<K: Eq + Hash, V>(cache: &Cache<K, V>, key: K, value: V) {
    let map = cache.get_or_init(Default::default);
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn pod_identity_needs_a_hostname_and_a_namespace() {
        assert_eq!(pod_identity(&env(&[]), Some("ns".into())), None);
        assert_eq!(pod_identity(&env(&[("HOSTNAME", "laptop")]), None), None);
        let from_sa = pod_identity(&env(&[("HOSTNAME", "pc-0")]), Some("sa-ns\n".into()));
        assert_eq!(
            from_sa,
            Some(PodIdentity {
                namespace: "sa-ns".into(),
                name: "pc-0".into()
            })
        );
    }

    #[test]
    fn pod_identity_prefers_paperclip_namespace_then_pod_namespace() {
        let vars = [
            ("HOSTNAME", "pc-0"),
            ("POD_NAMESPACE", "pod-ns"),
            ("PAPERCLIP_NAMESPACE", "pc-ns"),
        ];
        let identity = pod_identity(&env(&vars), Some("sa-ns".into())).unwrap();
        assert_eq!(identity.namespace, "pc-ns");
        let identity = pod_identity(&env(&vars[..2]), Some("sa-ns".into())).unwrap();
        assert_eq!(identity.namespace, "pod-ns");
        let blank = [("HOSTNAME", "pc-0"), ("PAPERCLIP_NAMESPACE", " ")];
        let identity = pod_identity(&env(&blank), Some("sa-ns".into())).unwrap();
        assert_eq!(identity.namespace, "sa-ns");
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named_in_the_error() {
        let err = connect(Some("/nonexistent/kubeconfig")).await.unwrap_err();
        assert!(
            matches!(&err, Error::Kubeconfig { path, .. } if path == "/nonexistent/kubeconfig")
        );
        let message = crate::error::chain(&err);
        assert!(
            message.starts_with("cannot use kubeconfig /nonexistent/kubeconfig: "),
            "{message}"
        );
        assert_eq!(err.code(), ErrorCode::ClusterUnreachable);
    }

    #[tokio::test]
    async fn a_kubeconfig_that_is_not_yaml_is_named_in_the_error() {
        let path = std::env::temp_dir().join(format!("not-a-kubeconfig-{}", std::process::id()));
        std::fs::write(&path, "{{ this is not: a kubeconfig").unwrap();
        let err = connect(path.to_str()).await.unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(&err, Error::Kubeconfig { .. }), "{err:?}");
        assert!(crate::error::chain(&err).contains("not-a-kubeconfig"));
    }

    #[tokio::test]
    async fn a_kubeconfig_without_server_url_is_refused() {
        let path = std::env::temp_dir().join(format!("no-server-{}", std::process::id()));
        let yaml = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {}\ncontexts:\n- name: c\n  context: {cluster: k, user: u, namespace: team}\nusers:\n- name: u\n  user: {}\n";
        std::fs::write(&path, yaml).unwrap();
        let err = connect(path.to_str()).await.unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(
                &err,
                Error::Kubeconfig {
                    source: KubeconfigError::MissingClusterUrl,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_kubeconfig_context_namespace_becomes_the_default_and_clients_are_cached() {
        let path = std::env::temp_dir().join(format!("kubeconfig-{}", std::process::id()));
        let yaml = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: c\n  context: {cluster: k, user: u, namespace: team}\nusers:\n- name: u\n  user: {token: t}\n";
        std::fs::write(&path, yaml).unwrap();
        let first = connect(path.to_str()).await.unwrap();
        // The second connect must not read the file: it is gone.
        std::fs::remove_file(&path).unwrap();
        let second = connect(path.to_str()).await.unwrap();
        assert_eq!(first.default_namespace(), "team");
        assert_eq!(second.default_namespace(), "team");
    }
}
