#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubelet v1.20.2 from Debian
# bookworm's `kubernetes` source package with Debian's Go, once per machine.
#
# Output: $K8S_BIN (printed on the last line). The cache key is the version plus a hash of this
# script, so editing the build invalidates the cache and nothing else does.
#
# NB: Go >= 1.18 crashes the vendored modern-go/reflect2 1.0.1 (SIGSEGV in mapiterinit); swap in
# Debian's reflect2 1.0.2 and json-iterator 1.1.12, as upstream did in later 1.20 patch releases.
set -euo pipefail

K8S_VERSION=1.20.2
K8S_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$(sha256sum "$here/build-k8s.sh" | cut -c1-12)
CACHE=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paperclip-claude-k8s}
K8S_BIN=$CACHE/k8s-v$K8S_VERSION-$key/bin
WORK=$CACHE/k8s-build

have_all() { for w in $WHAT; do [ -x "$K8S_BIN/$(basename "$w")" ] || return 1; done; }

main() {
  if have_all; then echo "$K8S_BIN"; return; fi
  echo "building Kubernetes v$K8S_VERSION from Debian source (cold: about 8 minutes on 2 cores)" >&2
  mkdir -p "$WORK" "$K8S_BIN.tmp"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $K8S_VERSION"; then
    local uri
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" > /etc/apt/sources.list.d/bookworm-src.sources
    apt-get update >/dev/null
  fi
  apt-get install -y --no-install-recommends golang-go rsync make dpkg-dev \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null
  cd "$WORK"
  local src=kubernetes-$K8S_VERSION
  if [ ! -f "$src/.prepared" ]; then
    rm -rf "$src" kubernetes_*
    apt-get source --download-only "kubernetes=$K8S_VERSION*" >/dev/null 2>&1 || apt-get source --download-only kubernetes >/dev/null
    tar xzf kubernetes_*.orig.tar.gz
    tar xJf kubernetes_*.debian.tar.xz -C "$src"
    (cd "$src" && while read -r p; do [ -n "$p" ] && patch -p1 < "debian/patches/$p" >/dev/null; done < debian/patches/series)
    local v=$src/vendor/github.com
    rm -rf "$v/modern-go/reflect2" "$v/json-iterator/go"
    rsync -a --exclude '*_test.go' --exclude '*_tests' /usr/share/gocode/src/github.com/modern-go/reflect2/ "$v/modern-go/reflect2/"
    rsync -a --exclude '*_test.go' --exclude '*_tests' --exclude benchmarks /usr/share/gocode/src/github.com/json-iterator/go/ "$v/json-iterator/go/"
    touch "$src/.prepared"
  fi
  mkdir -p gopath/src/k8s.io && ln -sfn "$WORK/$src" gopath/src/k8s.io/kubernetes
  cd gopath/src/k8s.io/kubernetes
  GOPATH=$WORK/gopath GOCACHE=$WORK/gocache KUBE_GIT_VERSION=v$K8S_VERSION KUBE_GIT_TREE_STATE=archive \
    KUBE_GIT_COMMIT=$K8S_COMMIT make WHAT="$WHAT" >"$WORK/make.log" 2>&1 || { tail -n 40 "$WORK/make.log" >&2; exit 1; }
  for w in $WHAT; do cp "_output/local/bin/linux/amd64/$(basename "$w")" "$K8S_BIN.tmp/"; done
  rm -rf "$K8S_BIN" && mv "$K8S_BIN.tmp" "$K8S_BIN"
  echo "$K8S_BIN"
}

main "$@"
