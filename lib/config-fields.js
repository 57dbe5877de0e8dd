// The adapter config keys (SPEC §4), in ONE table from which both getConfigSchema() (the UI form)
// and agentConfigurationDoc (the markdown Paperclip shows agents and operators) are generated, so
// the two cannot drift apart. __test__/surface.test.mjs checks this table against the keys
// src/plan/config.rs reads, in both directions.
import { currentModels } from "./models.js";

/** The heartbeat prompt used when `promptTemplate` is unset (src/plan/config.rs). */
export const DEFAULT_PROMPT_TEMPLATE =
  "You are agent {{agent.id}} ({{agent.name}}). Continue your Paperclip work.";

/**
 * One row per key Config::parse reads. `type` is the UI field type; `form: false` marks a key
 * that is read but has no form field of its own (documented only). `doc` is the truthful
 * description; `accepts` says which value shapes are read (others are reported on stderr).
 */
export const CONFIG_FIELDS = [
  // Claude CLI
  { key: "model", group: "Claude", label: "Model", type: "combobox", accepts: "string",
    doc: "`--model`; unset = the CLI's default. Bedrock ids (`us.anthropic.*`) when the agents use Bedrock." },
  { key: "effort", group: "Claude", label: "Effort", type: "select", accepts: "string",
    options: ["low", "medium", "high"],
    doc: "`--effort`; unset = the CLI's default." },
  { key: "maxTurnsPerRun", group: "Claude", label: "Max turns per run", type: "number", default: 0,
    accepts: "non-negative whole number", doc: "`--max-turns N`; 0 = unlimited." },
  { key: "dangerouslySkipPermissions", group: "Claude", label: "Skip permission prompts", type: "toggle",
    default: true, accepts: "boolean",
    doc: "`--dangerously-skip-permissions`; pods run unattended, so nobody could answer a prompt." },
  { key: "instructionsFilePath", group: "Claude", label: "Instructions file", type: "text", accepts: "string",
    doc: "Agent instructions file (Paperclip's managed instructions bundle sets it), passed with `--append-system-prompt-file` on fresh sessions only (a resumed session already has them). A file the server can read is copied, with its sibling files, to a content-addressed directory on the shared volume (`/paperclip/.claude-k8s/bundles/<sha256>/instructions/`) and the Job reads that copy; when no shared volume is visible to the server it is left out, with a note on stderr. A path the server cannot read (e.g. a file in the image) is passed as is." },
  { key: "extraArgs", group: "Claude", label: "Extra CLI arguments", type: "text", accepts: "array of strings, or one string split like a shell would",
    doc: "Appended last to the `claude` command line." },
  { key: "env", group: "Claude", label: "Environment", type: "textarea",
    accepts: "object of strings (or `{type: \"plain\", value}` bindings), a JSON object string, or `KEY=value` lines",
    doc: "Extra container env. Overrides inherited and `PAPERCLIP_*` values, except `PAPERCLIP_API_KEY` (always the run's auth token). Values of names containing KEY, TOKEN, SECRET or PASSWORD travel in a per-Job Secret, never as literals in the pod spec." },
  { key: "promptTemplate", group: "Prompt", label: "Heartbeat prompt", type: "textarea",
    default: DEFAULT_PROMPT_TEMPLATE, accepts: "string",
    doc: "Heartbeat prompt; `{{dotted.path}}` is replaced from the run (`agent.id`, `agent.name`, `context.*`, ...), missing values render empty." },
  { key: "bootstrapPromptTemplate", group: "Prompt", label: "Bootstrap prompt", type: "textarea", accepts: "string",
    doc: "Prepended to the prompt only when no session is resumed." },
  { key: "cwd", group: "Prompt", label: "Working directory", type: "text", default: "/paperclip", accepts: "absolute path",
    doc: "Container working directory when the Paperclip workspace gives none." },
  // Kubernetes
  { key: "namespace", group: "Kubernetes", label: "Namespace", type: "text", accepts: "DNS label",
    doc: "Where Jobs, pods and Secrets live; unset = the Paperclip pod's namespace (`PAPERCLIP_NAMESPACE`, `POD_NAMESPACE`, the service account's), or the kubeconfig context's." },
  { key: "image", group: "Kubernetes", label: "Image", type: "text", accepts: "string",
    doc: "Image of the `claude` container (must contain the `claude` CLI); unset = the Paperclip pod's image. Required when Paperclip does not run in a pod." },
  { key: "imagePullPolicy", group: "Kubernetes", label: "Image pull policy", type: "select", default: "IfNotPresent",
    options: ["IfNotPresent", "Always", "Never"], accepts: "`Always`, `IfNotPresent` or `Never`",
    doc: "Pull policy of the `claude` container." },
  { key: "kubeconfig", group: "Kubernetes", label: "Kubeconfig path", type: "text", accepts: "string (`~/` expands)",
    doc: "Kubeconfig file for cluster access; unset = the pod's service account in a pod, else `$KUBECONFIG` / `~/.kube/config`." },
  { key: "serviceAccountName", group: "Kubernetes", label: "Pod service account", type: "text", accepts: "DNS subdomain",
    doc: "Service account of the Job's pod; unset = the namespace's default." },
  { key: "pvcName", group: "Kubernetes", label: "Shared PVC", type: "text", accepts: "DNS subdomain",
    doc: "PersistentVolumeClaim mounted at `/paperclip` (HOME of the CLI, where sessions persist) when none is inherited from the Paperclip pod. Without either, each Job gets an emptyDir and sessions cannot be resumed. Should be ReadWriteMany." },
  { key: "secretRef", group: "Kubernetes", label: "Credentials Secret", type: "text", default: "paperclip-secrets", accepts: "DNS subdomain",
    doc: "Secret whose existence the environment test checks (e.g. the one holding `ANTHROPIC_API_KEY`)." },
  { key: "resources", group: "Kubernetes", label: "Resources", type: "textarea", form: false, accepts: "object `{requests: {cpu, memory}, limits: {cpu, memory}}`",
    doc: "Requests and limits of the `claude` container, nested; the four flat keys below win when both are given. Defaults: requests 1000m / 2Gi, limits 4000m / 8Gi." },
  { key: "resources.requests.cpu", group: "Kubernetes", label: "CPU request", type: "text", default: "1000m", accepts: "Kubernetes quantity",
    doc: "CPU request of the `claude` container." },
  { key: "resources.requests.memory", group: "Kubernetes", label: "Memory request", type: "text", default: "2Gi", accepts: "Kubernetes quantity",
    doc: "Memory request of the `claude` container." },
  { key: "resources.limits.cpu", group: "Kubernetes", label: "CPU limit", type: "text", default: "4000m", accepts: "Kubernetes quantity",
    doc: "CPU limit of the `claude` container." },
  { key: "resources.limits.memory", group: "Kubernetes", label: "Memory limit", type: "text", default: "8Gi", accepts: "Kubernetes quantity",
    doc: "Memory limit of the `claude` container." },
  { key: "nodeSelector", group: "Kubernetes", label: "Node selector", type: "textarea",
    accepts: "object, JSON object string, or `key=value` lines / comma-separated",
    doc: "Added to the pod's node selector (after the inherited one)." },
  { key: "tolerations", group: "Kubernetes", label: "Tolerations", type: "textarea", accepts: "array of Toleration objects, or a JSON string of one",
    doc: "Added to the pod's tolerations (after the inherited ones); invalid entries are skipped with a warning." },
  { key: "labels", group: "Kubernetes", label: "Extra labels", type: "textarea",
    accepts: "object, JSON object string, or `key=value` lines / comma-separated",
    doc: "Extra Job and pod labels. Keys under `paperclip.io/`, `app.kubernetes.io/`, `batch.kubernetes.io/`, and `job-name` / `controller-uid` are reserved and refused with a warning." },
  { key: "hostNetwork", group: "Kubernetes", label: "Host network", type: "toggle", default: false, accepts: "boolean",
    doc: "Run the pod in the node's network namespace (testbeds, node-local API proxies). Breaks the \"restricted\" Pod Security Standard; off unless asked for." },
  // Lifecycle
  { key: "timeoutSec", group: "Lifecycle", label: "Timeout (s)", type: "number", default: 0, accepts: "non-negative whole number",
    doc: "Job `activeDeadlineSeconds`; 0 = no deadline. A run past it ends `timeout`." },
  { key: "graceSec", group: "Lifecycle", label: "Grace (s)", type: "number", default: 60, accepts: "non-negative whole number",
    doc: "Extra wait past `timeoutSec` before the adapter gives up on the Job." },
  { key: "ttlSecondsAfterFinished", group: "Lifecycle", label: "Job TTL (s)", type: "number", default: 300, accepts: "non-negative whole number",
    doc: "Job `ttlSecondsAfterFinished`: the cluster's backstop for deleting finished Jobs." },
  { key: "retainJobs", group: "Lifecycle", label: "Keep finished Jobs", type: "toggle", default: false, accepts: "boolean",
    doc: "Keep finished Jobs and their Secrets for debugging instead of deleting them (the TTL still applies)." },
  { key: "reattachOrphanedJobs", group: "Lifecycle", label: "Reattach orphaned Jobs", type: "toggle", default: true, accepts: "boolean",
    doc: "When a live Job of an earlier run of the same task and session exists (e.g. after a server restart), follow it instead of starting another." },
];

/** The choices a field offers: its own, or the models for `model`. */
function optionsOf(field) {
  if (field.key === "model") return currentModels().map(({ id, label }) => ({ value: id, label }));
  return field.options?.map((value) => ({ value, label: value }));
}

/** `getConfigSchema()`: the form fields, in table order. */
export function configSchema() {
  return {
    fields: CONFIG_FIELDS.filter((f) => f.form !== false).map((f) => ({
      key: f.key,
      label: f.label,
      type: f.type,
      ...(optionsOf(f) ? { options: optionsOf(f) } : {}),
      ...(f.default !== undefined ? { default: f.default } : {}),
      hint: f.doc,
      group: f.group,
    })),
  };
}

/** `agentConfigurationDoc`: every key, its accepted shapes and default, as markdown. */
export function configurationDoc() {
  const lines = [
    "# claude_k8s agent configuration",
    "",
    "Adapter: claude_k8s. Each heartbeat runs Claude Code (`claude --print --output-format stream-json`) as a Kubernetes Job and streams its output back.",
    "",
    "Values are read strictly: a string counts only if non-empty, a number only if finite, a boolean only if it is a boolean. A value that is present but unusable keeps the default and is reported on the run's stderr and by the environment test, naming the key. Unknown keys are ignored.",
  ];
  let group;
  for (const f of CONFIG_FIELDS) {
    if (f.group !== group) {
      group = f.group;
      lines.push("", `${group} fields:`);
    }
    const dflt = f.default === undefined ? "" : `, default ${JSON.stringify(f.default)}`;
    lines.push(`- ${f.key} (${f.accepts}, optional${dflt}): ${f.doc}`);
  }
  lines.push(
    "",
    "Notes:",
    "- The run's auth token reaches Claude as `PAPERCLIP_API_KEY` through a per-Job Secret; the prompt travels in Secrets too, never in argv or literal env.",
    "- The Job inherits image, imagePullSecrets, DNS config, the PVC at `/paperclip`, Secret volumes, env, node selector and tolerations from the Paperclip pod when Paperclip runs in one.",
    "- Skills: the company skills the agent has enabled (and Paperclip's operational skill) are copied into the same content-addressed bundle under `.claude/skills/` for `--add-dir` (mode \"ephemeral\": nothing is installed).",
    "- The shared volume is where the server sees the Jobs' `/paperclip`: `/paperclip` when Paperclip runs in a pod with that PVC, else the directory in the server's `PAPERCLIP_K8S_SHARED_DIR` env.",
    "- Least-privilege RBAC for the identity the adapter uses: `deploy/rbac.yaml` in the package.",
    "",
  );
  return lines.join("\n");
}
