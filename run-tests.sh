#!/usr/bin/env bash
# Every test tier, least powerful first: Rust unit and mock tests, then the real-cluster Rust
# tests, then the JS tests that load the package the way Paperclip does (including real Paperclip
# servers). Uses $KUBECONFIG when set; otherwise brings the local testbed up, and down at the end
# (before the last line, so the tally closes the output).
# A missing cluster is a failure, never a skip. Last line: "tests: N passed, M failed".
#
# Settings: KUBECONFIG (use this cluster), KEEP_TESTBED=1 (leave a testbed we started running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
log=$(mktemp /tmp/paperclip-claude-k8s-tests.XXXXXX)
started_testbed=

cleanup() {
  if [ -n "$started_testbed" ] && [ -z "${KEEP_TESTBED:-}" ]; then testbed/down >&2 || true; fi
}

tally() {
  awk '
    /^test result: /      { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
    /^# pass [0-9]+$/     { p += $3 }
    /^# fail [0-9]+$/     { f += $3 }
    END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
}

# Runs one tier, appending its output to the log; a failing tier does not stop the others.
tier() {
  echo "== $*" >&2
  "$@" 2>&1 | tee -a "$log" || failed=1
}

main() {
  trap cleanup EXIT INT TERM
  failed=
  bash testbed/install-deps.sh
  npm run build:debug
  tier cargo test --lib --tests
  if [ -z "${KUBECONFIG:-}" ]; then
    started_testbed=1
    KUBECONFIG=$(testbed/up | tail -n 1)
    export KUBECONFIG
  fi
  kubectl get nodes
  tier cargo test --tests -- --ignored --test-threads=2
  bash e2e/paperclip/install.sh
  ADAPTER_TGZ=$(pack)
  export ADAPTER_TGZ
  tier node --test --test-concurrency=1 __test__/*.test.mjs
  cleanup
  started_testbed=
  tally
  [ -z "$failed" ]
}

# The package as users get it (release binary inside), for the tests that install it into Paperclip.
pack() {
  local dir
  dir=$(mktemp -d /tmp/paperclip-claude-k8s-pack.XXXXXX)
  chmod 755 "$dir"
  npm pack --pack-destination "$dir" >&2
  ls "$dir"/*.tgz
}

main "$@"
