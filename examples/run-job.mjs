// Runs one real Claude Code Job through the adapter's execute(), the way Paperclip calls it,
// printing the transcript as it streams and the result at the end.
//
// Cluster: $KUBECONFIG (set by ./run-job.sh to the local testbed when no cluster is configured).
// Settings (all optional):
//   CLAUDE_K8S_PROMPT   the heartbeat prompt (default: a short greeting)
//   CLAUDE_K8S_CONFIG   JSON merged over the testbed defaults below (image, namespace, env, ...)
import { createServerAdapter } from "../index.js";

const testbedDefaults = {
  kubeconfig: process.env.KUBECONFIG,
  namespace: "default",
  image: "paperclip/claude-agent:dev",
  imagePullPolicy: "IfNotPresent",
  hostNetwork: true,
  pvcName: "paperclip-shared",
  // The testbed node has 2 CPUs; the default request (1000m) would let only two runs fit.
  resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "2", memory: "2Gi" } },
  env: {
    ANTHROPIC_BASE_URL: "http://127.0.0.1:18765",
    ANTHROPIC_API_KEY: "testbed",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    CLAUDE_CODE_MAX_RETRIES: "0",
  },
};

const config = {
  ...testbedDefaults,
  promptTemplate: process.env.CLAUDE_K8S_PROMPT ?? "You are agent {{agent.id}} ({{agent.name}}). Say hello. USE_TOOL",
  ...JSON.parse(process.env.CLAUDE_K8S_CONFIG ?? "{}"),
};

const adapter = createServerAdapter();
const runId = `example-${Date.now().toString(36)}`;
const result = await adapter.execute({
  runId,
  agent: { id: "example-agent", companyId: "example-company", name: "Example", adapterType: "claude_k8s", adapterConfig: config },
  runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null },
  config,
  context: {},
  authToken: "example-token",
  onLog: async (stream, chunk) => {
    (stream === "stderr" ? process.stderr : process.stdout).write(chunk);
  },
  onMeta: async (meta) => {
    console.log(`[example] onMeta: ${meta.command} ${meta.commandArgs?.join(" ") ?? ""}`);
  },
});

console.log("\n[example] result:");
console.log(JSON.stringify(result, null, 2));
process.exitCode = result.errorMessage ? 1 : 0;
