#!/usr/bin/env bash
# Smoke test of the testbed: the real Claude Code CLI in the agent image, as a Kubernetes Job, talking
# to the mock Anthropic API on the host, with the pod layout the adapter uses:
#   init container `prompt` (busybox:1.36) writes the prompt to an emptyDir; container `claude`
#   (paperclip/claude-agent:dev) runs `claude --print --output-format stream-json --verbose` with the
#   prompt on stdin; hostNetwork, uid/gid 1000, runAsNonRoot, no capabilities, emptyDir /tmp,
#   HOME=/paperclip on a ReadWriteMany PVC made by pvc.sh.
# The prompt asks the mock for a tool call (USE_TOOL CMD[...]), so the CLI runs a Bash command in the
# container. Passes when the Job is Complete and the log holds a `result` event with "is_error":false
# and the command's output. Runs in a fresh namespace, deleted at the end. Exits non-zero on failure
# with the pod's status and log.
#
# Usage: testbed/smoke.sh   (after testbed/up)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# Seconds the Job may take to finish.
JOB_TIMEOUT=${JOB_TIMEOUT:-180}
NS=testbed-smoke-$(date +%s)-$RANDOM
# What the tool call prints, to find in the log.
MARKER=smoke-marker-$RANDOM

job_manifest() {
  cat <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: smoke, namespace: $NS}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      hostNetwork: true
      securityContext:
        runAsUser: 1000
        runAsGroup: 1000
        fsGroup: 1000
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      initContainers:
      - name: prompt
        image: busybox:1.36
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'echo "Smoke test. USE_TOOL CMD[echo $MARKER; id -u]" > /var/run/paperclip/prompt']
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: prompt, mountPath: /var/run/paperclip}]
      containers:
      - name: claude
        image: paperclip/claude-agent:dev
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'exec claude "\$@" < /var/run/paperclip/prompt', claude]
        args: [--print, --output-format, stream-json, --verbose, --dangerously-skip-permissions]
        workingDir: /paperclip
        env:
        - {name: HOME, value: /paperclip}
        - {name: ANTHROPIC_BASE_URL, value: "http://127.0.0.1:$MOCK_PORT"}
        - {name: ANTHROPIC_API_KEY, value: test}
        - {name: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, value: "1"}
        - {name: CLAUDE_CODE_MAX_RETRIES, value: "0"}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts:
        - {name: prompt, mountPath: /var/run/paperclip}
        - {name: tmp, mountPath: /tmp}
        - {name: paperclip, mountPath: /paperclip}
      volumes:
      - {name: prompt, emptyDir: {}}
      - {name: tmp, emptyDir: {}}
      - {name: paperclip, persistentVolumeClaim: {claimName: paperclip-shared}}
EOF
}

job_state() {
  kube -n "$NS" get job smoke -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{end}'
}

fail() {
  echo "--- pods" >&2
  kube -n "$NS" get pods -o wide >&2 || true
  kube -n "$NS" describe pods >&2 || true
  echo "--- log (init container prompt)" >&2
  kube -n "$NS" logs job/smoke -c prompt >&2 || true
  echo "--- log (container claude)" >&2
  kube -n "$NS" logs job/smoke -c claude >&2 || true
  die "smoke: $*"
}

cleanup() { kube delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; }

main() {
  [ -f "$ADMIN_KUBECONFIG" ] || die "no cluster: $ADMIN_KUBECONFIG missing (run testbed/up)"
  trap cleanup EXIT
  kube create namespace "$NS" >/dev/null
  "$here/pvc.sh" "$NS" >/dev/null
  job_manifest | kube apply -f - >/dev/null
  log "smoke: Job $NS/smoke created"
  local deadline=$((SECONDS + JOB_TIMEOUT)) state=""
  until state=$(job_state) && [ -n "$state" ]; do
    ((SECONDS < deadline)) || fail "Job not finished after ${JOB_TIMEOUT}s"
    sleep 0.5
  done
  [ "$state" = Complete ] || fail "Job ended $state"
  local out
  out=$(kube -n "$NS" logs job/smoke -c claude)
  echo "$out"
  local result
  result=$(grep '"type":"result"' <<< "$out" || true)
  [[ "$result" == *'"is_error":false'* ]] || fail "no result event with \"is_error\":false"
  [[ "$out" == *"$MARKER"* ]] || fail "the Bash tool's output ($MARKER) is missing"
  log "smoke: passed"
}

main "$@"
