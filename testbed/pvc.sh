#!/usr/bin/env bash
# Create a ReadWriteMany PersistentVolumeClaim backed by a host directory, for the /paperclip volume.
#
# Usage: testbed/pvc.sh NAMESPACE [NAME]   (NAME defaults to paperclip-shared)
# Makes host directory $TESTBED_DIR/volumes/NAMESPACE-NAME (owned by uid/gid 1000, the agent's user),
# a hostPath PersistentVolume `testbed-NAMESPACE-NAME` pre-bound to the claim, and the claim NAME
# in NAMESPACE (created if missing); waits until the claim is Bound and prints its name.
# Idempotent. The PV is Retain: deleting the namespace releases it, and running this again for the
# same NAMESPACE/NAME binds a new claim to it (with the old data) while the cluster lives; `down`
# removes the directories.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# Capacity written on the PV and the claim (hostPath does not enforce it).
CAPACITY=1Gi
# Seconds to wait for the claim to be Bound.
BIND_TIMEOUT=${BIND_TIMEOUT:-60}
# Owner of the host directory: the agent pods run as this uid and gid.
AGENT_UID=1000

main() {
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then die "usage: $0 NAMESPACE [NAME]"; fi
  local ns=$1 name=${2:-paperclip-shared}
  local pv=testbed-$ns-$name dir=$VOLUMES/$ns-$name
  [ -f "$ADMIN_KUBECONFIG" ] || die "no cluster: $ADMIN_KUBECONFIG missing (run testbed/up)"

  mkdir -p "$dir"
  chown "$AGENT_UID:$AGENT_UID" "$dir"
  chmod 0775 "$dir"

  kube get namespace "$ns" >/dev/null 2>&1 || kube create namespace "$ns" >/dev/null
  # A claim deleted with its namespace leaves the PV Released with the old claim's uid: forget it.
  if [ "$(kube get pv "$pv" -o jsonpath='{.status.phase}' 2>/dev/null)" = Released ]; then
    kube patch pv "$pv" --type merge -p '{"spec":{"claimRef":{"uid":null,"resourceVersion":null}}}' >/dev/null
  fi
  kube apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  labels: {app.kubernetes.io/managed-by: paperclip-testbed}
spec:
  capacity: {storage: $CAPACITY}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: $ns, name: $name}
  hostPath: {path: $dir, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $name
  namespace: $ns
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: $pv
  resources: {requests: {storage: $CAPACITY}}
EOF
  local deadline=$((SECONDS + BIND_TIMEOUT))
  until [ "$(kube -n "$ns" get pvc "$name" -o jsonpath='{.status.phase}')" = Bound ]; do
    if ((SECONDS >= deadline)); then
      kube -n "$ns" describe pvc "$name" >&2 || true
      die "PVC $ns/$name not Bound after ${BIND_TIMEOUT}s"
    fi
    sleep 0.5
  done
  echo "$name"
}

main "$@"
