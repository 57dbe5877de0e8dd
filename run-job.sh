#!/usr/bin/env bash
# The main job: one real Claude Code Job through the adapter's execute(), printing the transcript
# and the result. Uses $KUBECONFIG when set; otherwise brings up the local testbed cluster first
# (cold: builds Kubernetes from Debian source once, ~10 minutes; warm: seconds).
#
# Settings: KUBECONFIG, CLAUDE_K8S_PROMPT, CLAUDE_K8S_CONFIG (see examples/run-job.mjs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

main() {
  if [ ! -f paperclip-claude-k8s.linux-x64-gnu.node ]; then
    npm install --no-audit --no-fund
  fi
  if [ -z "${KUBECONFIG:-}" ]; then
    bash testbed/install-deps.sh
    KUBECONFIG=$(testbed/up | tail -n 1)
    export KUBECONFIG
  fi
  node examples/run-job.mjs
}

main "$@"
