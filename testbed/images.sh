#!/usr/bin/env bash
# Build the testbed's container images as OCI tarballs, without a registry or a container engine:
#   pause.tar    localhost/paperclip-pause:1          busybox `sleep`, the pod sandbox
#   busybox.tar  docker.io/library/busybox:1.36        Debian's busybox-static, every applet in /bin
#   agent.tar    docker.io/paperclip/claude-agent:dev  the real Claude Code CLI at /usr/local/bin/claude,
#                                                     bash (its Bash tool wants bash or zsh), busybox
#                                                     applets, the glibc loader and libs ldd lists
# Output: the directory holding them, on the last stdout line. It is cached under $TESTBED_CACHE,
# keyed by the CLI version and a hash of this script, mkimage.py and lib.sh (image names), so a rebuild
# happens only when one of those changes (the build replaces older ones). The CLI's npm package is
# cached separately, keyed by its version.
set -euo pipefail

# The pinned Claude Code CLI (npm platform package holding the native binary).
CLAUDE_CLI_VERSION=2.1.329
CLAUDE_CLI_PACKAGE=@anthropic-ai/claude-code-linux-x64

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
key=$(cat "$here/images.sh" "$here/mkimage.py" "$here/lib.sh" | sha256sum | cut -c1-12)
OUT=$TESTBED_CACHE/images-claude-$CLAUDE_CLI_VERSION-$key
CLI_CACHE=$TESTBED_CACHE/claude-cli-$CLAUDE_CLI_VERSION
CLI_TGZ=$CLI_CACHE/anthropic-ai-claude-code-linux-x64-$CLAUDE_CLI_VERSION.tgz

# Copies each binary and every library `ldd` lists for it (with the loader) into rootfs $1,
# at the same paths as on the host.
copy_with_libs() {
  local rootfs=$1; shift
  local lib
  for lib in $(ldd "$@" | grep -o '/[^ ]*' | sort -u); do
    [ -e "$lib" ] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

# Lays out a busybox root filesystem in $1: every applet as a symlink in /bin, a passwd with
# root, nobody and the agent user 1000, and a world-writable /tmp.
busybox_rootfs() {
  local rootfs=$1 applet
  mkdir -p "$rootfs"/{bin,usr/bin,etc,tmp,proc,sys,dev,root,var/tmp}
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  ln -sf ../../bin/env "$rootfs/usr/bin/env"
  printf 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/paperclip:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    > "$rootfs/etc/passwd"
  printf 'root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
}

fetch_cli() {
  [ -s "$CLI_TGZ" ] && return
  log "downloading $CLAUDE_CLI_PACKAGE@$CLAUDE_CLI_VERSION (about 170 MB)"
  mkdir -p "$CLI_CACHE"
  (cd "$CLI_CACHE" && npm pack --silent "$CLAUDE_CLI_PACKAGE@$CLAUDE_CLI_VERSION" >/dev/null)
  [ -s "$CLI_TGZ" ] || die "npm pack did not produce $CLI_TGZ"
}

build() {
  local work=$OUT.tmp
  rm -rf "$work" && mkdir -p "$work"
  local mk="python3 $here/mkimage.py"

  log "building pause image"
  mkdir -p "$work/pause/bin" "$work/pause/proc" "$work/pause/sys" "$work/pause/dev"
  cp /bin/busybox "$work/pause/bin/busybox"
  ln -s busybox "$work/pause/bin/sleep"
  $mk "$work/pause" "$work/pause.tar" --name "$PAUSE_IMAGE" --cmd '["/bin/sleep","2147483647"]' --env PATH=/bin

  log "building busybox image"
  busybox_rootfs "$work/busybox"
  $mk "$work/busybox" "$work/busybox.tar" --name "$BUSYBOX_IMAGE" --cmd '["sh"]' \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

  log "building agent image with Claude Code CLI $CLAUDE_CLI_VERSION"
  fetch_cli
  local agent=$work/agent
  busybox_rootfs "$agent"
  mkdir -p "$agent/usr/local/bin" "$work/cli"
  tar xzf "$CLI_TGZ" -C "$work/cli" package/claude
  mv "$work/cli/package/claude" "$agent/usr/local/bin/claude"
  chmod 0755 "$agent/usr/local/bin/claude"
  cp /bin/bash "$agent/bin/bash"
  copy_with_libs "$agent" "$agent/usr/local/bin/claude" /bin/bash
  $mk "$agent" "$work/agent.tar" --name "$AGENT_IMAGE" --cmd '["claude","--version"]' \
    --env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin --env SHELL=/bin/bash

  rm -rf "$work/pause" "$work/busybox" "$agent" "$work/cli"
  rm -rf "$OUT" && mv "$work" "$OUT"
  local stale
  for stale in "$TESTBED_CACHE"/images-claude-*; do
    if [ "$stale" != "$OUT" ]; then rm -rf "$stale"; fi
  done
}

main() {
  [ -s "$OUT/agent.tar" ] || build
  echo "$OUT"
}

main "$@"
