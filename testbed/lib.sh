# shellcheck shell=bash disable=SC2034 # settings used by the scripts that source this file
# Settings and helpers shared by testbed/up, down, images.sh, pvc.sh and smoke.sh (sourced, not run).
#
# Everything the testbed creates lives under $TESTBED_DIR:
#   pki/         CA, serving and client certificates, service-account key pair
#   run/         kubeconfigs (admin, alice, components), <component>.pid, <component>.log, etcd data
#   containerd/  containerd config, root, state and socket; the runc wrapper
#   kubelet/     the kubelet's --root-dir (bind-mounted onto itself by the kubelet, pod volumes inside)
#   cni/         CNI config and host-local IPAM state
#   volumes/     host directories behind the hostPath PersistentVolumes made by pvc.sh
#   pod-logs/    bind-mounted on /var/log/pods and /var/log/containers, where the kubelet of 1.20
#                writes container logs (fixed paths), so that down leaves none behind
#   previous-logs/  the logs of the run before the last wipe, for post-mortems
# Caches (Kubernetes binaries, Claude CLI package, image tarballs) live under $TESTBED_CACHE.

# Root of all testbed state.
TESTBED_DIR=${TESTBED_DIR:-/var/tmp/paperclip-claude-k8s-testbed}
# Build and download caches, reused across runs and wipes.
TESTBED_CACHE=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paperclip-claude-k8s}
export TESTBED_DIR TESTBED_CACHE

PKI=$TESTBED_DIR/pki
RUN=$TESTBED_DIR/run
CTRD=$TESTBED_DIR/containerd
KUBELET_ROOT=$TESTBED_DIR/kubelet
CNI=$TESTBED_DIR/cni
VOLUMES=$TESTBED_DIR/volumes
POD_LOGS=$TESTBED_DIR/pod-logs
ADMIN_KUBECONFIG=$RUN/admin.kubeconfig
CTRD_SOCK=$CTRD/containerd.sock

# Ports, all on 127.0.0.1.
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-2379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-2380}
ETCD_METRICS_PORT=${ETCD_METRICS_PORT:-2381}
APISERVER_PORT=${APISERVER_PORT:-6443}
KCM_PORT=${KCM_PORT:-10257}
SCHEDULER_PORT=${SCHEDULER_PORT:-10259}
KUBELET_PORT=${KUBELET_PORT:-11250}
KUBELET_HEALTHZ_PORT=${KUBELET_HEALTHZ_PORT:-11248}
# The stand-in Anthropic Messages API (testbed/mock-anthropic.py).
MOCK_PORT=${MOCK_PORT:-18765}

# Pod network: a bridge with no route out (pods that must reach the host use hostNetwork: true).
CNI_NETWORK=paperclip-testbed
CNI_BRIDGE=pctestbr0
CNI_SUBNET=10.244.77.0/24

# Images the node knows without a registry (see images.sh).
PAUSE_IMAGE=localhost/paperclip-pause:1
BUSYBOX_IMAGE=docker.io/library/busybox:1.36
AGENT_IMAGE=docker.io/paperclip/claude-agent:dev

# Components in start order; down stops them in reverse (containers first).
COMPONENTS="mock containerd etcd apiserver kcm scheduler kubelet"

# Kernel settings the kubelet's container manager sets on start (vm.overcommit_memory=1,
# kernel.panic=10, kernel.panic_on_oops=1, ...): up saves them in run/sysctl-saved, down restores them.
KUBELET_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

# Seconds each readiness wait may take before up fails with the component's log tail.
READY_TIMEOUT=${READY_TIMEOUT:-120}
# Seconds a running cluster may take to answer up's health check before up restarts it.
HEALTH_GRACE=${HEALTH_GRACE:-15}

# Size at which the kubelet rotates a container's log. The 1.20 kubelet's follow stream can lose the
# lines written around a rotation (bench/rotation.mjs shows it, and kubectl logs -f loses them
# too): no reader can recover them, so tests of exactly-once delivery would measure the kubelet,
# not the adapter. Real clusters default to 10Mi: CONTAINER_LOG_MAX_SIZE=10Mi testbed/up for that.
CONTAINER_LOG_MAX_SIZE=${CONTAINER_LOG_MAX_SIZE:-200Mi}

KUBECTL=${KUBECTL:-kubectl}

# The kubelet's fixed log directories, each bind-mounted from $POD_LOGS/<basename> while up.
KUBELET_LOG_DIRS="/var/log/pods /var/log/containers"

log() { echo "testbed: [${SECONDS}s] $*" >&2; }

die() { echo "testbed: ERROR: $*" >&2; exit 1; }

# Prints the recorded PID of component $1 if that process is alive and is ours (its command
# line names $TESTBED_DIR, which guards against a recycled PID); fails otherwise.
live_pid() {
  local f=$RUN/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *"$TESTBED_DIR"* ]] || return 1
  echo "$pid"
}

# Serialises up and down (and concurrent ups) on $TESTBED_DIR/.lock, held on fd 9 until exit.
# The dot keeps the lock file out of has_state and of down's wipe.
lock_testbed() {
  mkdir -p "$TESTBED_DIR"
  exec 9> "$TESTBED_DIR/.lock"
  flock 9
}

# Starts component $1 as "$@" (after the name) in its own session, logging to run/$1.log and
# recording its PID in run/$1.pid. It does not inherit fd 9 (the lock taken by lock_testbed).
start_component() {
  local name=$1; shift
  setsid "$@" > "$RUN/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$RUN/$name.pid"
}

# True while process $1 exists and is not a zombie (our components are reparented to PID 1, which
# may reap them late).
running() {
  kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Stops component $1 by its recorded PID: SIGTERM, then SIGKILL after $2 seconds (default 10).
stop_component() {
  local name=$1 grace=${2:-10} pid i
  if pid=$(live_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    log "stopped $name ($pid)"
    STOPPED_PIDS="${STOPPED_PIDS:-} $pid"
  fi
  rm -f "$RUN/$name.pid"
}

# Waits (at most 10 s) until PID 1 has reaped the processes stop_component stopped, so that not
# even a zombie of ours is left in ps.
wait_reaped() {
  local pid i
  for pid in ${STOPPED_PIDS:-}; do
    for ((i = 0; i < 100; i++)); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  done
}

# wait_for COMPONENT DESCRIPTION COMMAND...: runs COMMAND until it succeeds, for at most
# $READY_TIMEOUT seconds; on timeout (or if COMPONENT died) fails with the tail of its log.
wait_for() {
  local component=$1 what=$2; shift 2
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$component" >/dev/null; then
      tail -n 30 "$RUN/$component.log" >&2 2>/dev/null || true
      die "$component died while waiting for $what (log: $RUN/$component.log, tail above)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$RUN/$component.log" >&2 2>/dev/null || true
      die "timed out after ${READY_TIMEOUT}s waiting for $what (log: $RUN/$component.log, tail above)"
    fi
    sleep 0.2
  done
}

# True when $TESTBED_DIR holds anything besides the logs kept from the previous run.
has_state() {
  local entry
  for entry in "$TESTBED_DIR"/*; do
    if [ -e "$entry" ] && [ "$entry" != "$TESTBED_DIR/previous-logs" ]; then return 0; fi
  done
  return 1
}

kube() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

ctr_k8s() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }
