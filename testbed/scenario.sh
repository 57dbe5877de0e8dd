#!/usr/bin/env bash
# Check, on the running testbed, the Kubernetes behaviours the adapter relies on (ported from the
# prototype's scenario.sh, now with assertions and the real node):
#   1. a Job that succeeds is Complete; one that exits non-zero with backoffLimit 0 is Failed with
#      reason BackoffLimitExceeded; one past activeDeadlineSeconds is Failed with DeadlineExceeded
#   2. ttlSecondsAfterFinished deletes a finished Job (TTLAfterFinished feature gate)
#   3. deleting a Job with propagationPolicy Background garbage-collects its pods and a Secret that
#      has an ownerReference to it
#   4. a followed log (timestamps) ends when the container exits, with every line
#   5. containerd splits a log line over 16 KiB: without timestamps it comes back whole, with
#      timestamps each 16 KiB piece carries its own timestamp (one line, several timestamps)
#   6. user alice may not create Jobs until a RoleBinding allows it (SelfSubjectAccessReview)
# Prints one line per check and "N passed, N failed"; exits non-zero if any failed.
# Runs in a fresh namespace, deleted at the end.
#
# Usage: testbed/scenario.sh   (after testbed/up)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# Seconds any one wait may take.
WAIT_TIMEOUT=${WAIT_TIMEOUT:-120}
NS=testbed-scenario-$(date +%s)-$RANDOM
# Length of the long log line (above containerd's 16 KiB record size).
LONG_LINE=40000
PASSED=0
FAILED=0

check() { # name command...: runs the command, counts and prints the outcome
  local name=$1; shift
  if "$@"; then PASSED=$((PASSED + 1)); echo "ok   $name"; else FAILED=$((FAILED + 1)); echo "FAIL $name"; fi
}

# job NAME SCRIPT [EXTRA_SPEC_YAML]: a busybox Job running SCRIPT, backoffLimit 0
job() {
  kube -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  backoffLimit: 0
  ${3:-}
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox:1.36, command: [sh, -c, '$2']}
EOF
}

# wait_until COMMAND...: polls COMMAND until it succeeds, for at most $WAIT_TIMEOUT seconds.
wait_until() {
  local deadline=$((SECONDS + WAIT_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# job_condition JOB: the type and reason of the Job's true condition, e.g. "Failed/DeadlineExceeded".
job_condition() {
  kube -n "$NS" get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}/{.reason}{end}'
}

has_condition() { [ -n "$(job_condition "$1")" ]; }

job_ends() { # JOB EXPECTED: waits for the Job to finish, then compares its condition
  wait_until has_condition "$1" || { echo "     job $1 did not finish" >&2; return 1; }
  local got
  got=$(job_condition "$1")
  [ "$got" = "$2" ] || { echo "     job $1: $got, expected $2" >&2; return 1; }
}

gone() { ! kube -n "$NS" get "$@" >/dev/null 2>&1; }

job_pod() { kube -n "$NS" get pods -l "job-name=$1" -o jsonpath='{.items[*].metadata.name}'; }

has_pod() { [ -n "$(job_pod "$1")" ]; }

no_pod() { [ -z "$(job_pod "$1")" ]; }

has_log() { kube -n "$NS" logs "$1" >/dev/null 2>&1; }

check_gc() {
  local uid
  uid=$(kube -n "$NS" get job gc -o jsonpath='{.metadata.uid}')
  kube -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: gc-0
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: gc, uid: "$uid", controller: false, blockOwnerDeletion: true}]
stringData: {k: v}
EOF
  wait_until has_pod gc || return 1
  kube -n "$NS" delete job gc --cascade=background >/dev/null
  wait_until gone secret gc-0 && wait_until no_pod gc
}

check_follow() {
  local pod out
  wait_until has_pod ticks || return 1
  pod=$(job_pod ticks)
  wait_until has_log "$pod" || return 1
  out=$(timeout "$WAIT_TIMEOUT" "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" -n "$NS" logs -f --timestamps "$pod")
  [ "$(grep -c ' tick [1-4]$' <<< "$out")" = 4 ]
}

check_long_line() {
  job_ends long Complete/ || return 1
  local plain stamped
  plain=$(kube -n "$NS" logs job/long)
  stamped=$(kube -n "$NS" logs job/long --timestamps)
  [ "${#plain}" = "$LONG_LINE" ] || { echo "     plain line is ${#plain} bytes" >&2; return 1; }
  # one line, with a timestamp before each of the 3 pieces of 16 KiB or less
  [ "$(wc -l <<< "$stamped")" = 1 ] &&
    [ "$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z ' <<< "$stamped" | wc -l)" = 3 ]
}

alice_can() { # ANSWER: alice's `auth can-i create jobs` in the namespace is ANSWER
  [ "$("$KUBECTL" --kubeconfig "$RUN/alice.kubeconfig" -n "$NS" auth can-i create jobs.batch 2>/dev/null || true)" = "$1" ]
}

check_alice() {
  alice_can no || return 1
  kube -n "$NS" create role job-runner --verb=create,get,list,watch,delete --resource=jobs.batch,pods,pods/log,secrets >/dev/null
  kube -n "$NS" create rolebinding alice-jobs --role=job-runner --user=alice >/dev/null
  wait_until alice_can yes
}

cleanup() { kube delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; }

main() {
  [ -f "$ADMIN_KUBECONFIG" ] || die "no cluster: $ADMIN_KUBECONFIG missing (run testbed/up)"
  trap cleanup EXIT
  kube create namespace "$NS" >/dev/null
  wait_until kube -n "$NS" get serviceaccount default
  job ok 'echo done'
  job fails 'exit 3'
  job deadline 'sleep 60' 'activeDeadlineSeconds: 3'
  job ttl 'true' 'ttlSecondsAfterFinished: 0'
  job gc 'sleep 60'
  # shellcheck disable=SC2016 # expanded by the container's shell
  job ticks 'for i in 1 2 3 4; do echo tick $i; sleep 1; done'
  job long "head -c $LONG_LINE /dev/zero | tr \"\\0\" x"
  check "Job Complete" job_ends ok Complete/
  check "Job Failed/BackoffLimitExceeded" job_ends fails Failed/BackoffLimitExceeded
  check "Job Failed/DeadlineExceeded" job_ends deadline Failed/DeadlineExceeded
  check "ttlSecondsAfterFinished deletes the Job" wait_until gone job ttl
  check "Background delete collects pods and owned Secret" check_gc
  check "log follow ends with the container, every line" check_follow
  check "long line: whole without timestamps, one timestamp per 16 KiB with" check_long_line
  check "alice: SSAR no, then yes after RoleBinding" check_alice
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}

main "$@"
