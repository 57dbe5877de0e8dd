#!/usr/bin/env bash
# Install, from Debian's packages, everything testbed/up needs at run time on a fresh Debian 12
# (build-k8s.sh installs its own build dependencies: Go, make, the Kubernetes source package).
#   etcd-server                 etcd 3.4, the cluster's store
#   containerd runc             the container runtime behind the real kubelet
#   containernetworking-plugins bridge, host-local and loopback CNI plugins in /usr/lib/cni
#   busybox-static              the shell and applets of the busybox, pause and agent images
#   iproute2 util-linux mount   ip (CNI bridge cleanup); mount, umount, findmnt, flock, setsid
#   procps                      sysctl (down restores the kernel settings the kubelet changes)
#   jq openssl curl python3     runc-wrapper and down, the PKI, readiness probes, mkimage.py and the mock
#   npm                         `npm pack` of the Claude Code CLI package for the agent image
#   kubernetes-client           kubectl, only when none is installed already
# Idempotent; needs root. Usage: testbed/install-deps.sh
set -euo pipefail

PACKAGES="etcd-server containerd runc containernetworking-plugins busybox-static iproute2 util-linux mount procps
  jq openssl curl python3 ca-certificates"

main() {
  [ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root" >&2; exit 1; }
  local pkgs=$PACKAGES
  command -v npm >/dev/null || pkgs="$pkgs npm"
  command -v kubectl >/dev/null || pkgs="$pkgs kubernetes-client"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >/dev/null
  # shellcheck disable=SC2086 # one package per word
  apt-get install -y --no-install-recommends $pkgs >/dev/null
  # The Debian packages start their own etcd and containerd services where systemd runs: the testbed
  # starts its own on other paths, so stop those (they would hold etcd's port 2379).
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd containerd >/dev/null 2>&1 || true
  fi
  echo "install-deps.sh: installed or kept: $(tr -s " \n" " " <<< "$pkgs")" >&2
}

main "$@"
