// Types of paperclip-claude-k8s. Declared here rather than imported so the package has no
// runtime dependency; kept assignable to the types of @paperclipai/adapter-utils
// (dist/types.d.ts, checked against 2026.916.1): AdapterExecutionContext, AdapterExecutionResult,
// ServerAdapterModule["execute"].

/** `ctx.agent`: the agent the run belongs to. */
export interface AdapterAgent {
  id: string;
  companyId: string;
  name: string;
  adapterType?: string | null;
  adapterConfig?: unknown;
}

/** `ctx.runtime`: the session state Paperclip kept from the last run. */
export interface AdapterRuntime {
  sessionId: string | null;
  sessionParams: Record<string, unknown> | null;
  sessionDisplayId?: string | null;
  taskKey: string | null;
}

/** What `onMeta` receives before the Job is created. */
export interface AdapterInvocationMeta {
  adapterType: string;
  command: string;
  cwd?: string;
  commandArgs?: string[];
  commandNotes?: string[];
  env?: Record<string, string>;
  prompt?: string;
  promptMetrics?: Record<string, number>;
  context?: Record<string, unknown>;
}

/**
 * What `execute` reads. Wrong types do not throw: the run resolves with
 * `errorCode: "k8s_config_invalid"` naming the field. Callbacks may return a Promise (awaited)
 * or anything else (ignored); a throw or rejection fails the run with
 * `errorCode: "adapter_callback_failed"` naming the callback.
 */
export interface AdapterExecutionContext {
  runId: string;
  agent: AdapterAgent;
  runtime?: AdapterRuntime | null;
  /** The agent's adapterConfig (SPEC §4); JSON data only. */
  config?: Record<string, unknown> | null;
  /** The wake context; JSON data only. */
  context?: Record<string, unknown> | null;
  /** Handed to Claude as PAPERCLIP_API_KEY through a per-Job Secret. */
  authToken?: string | null;
  onLog: (stream: "stdout" | "stderr", chunk: string) => unknown;
  onMeta?: ((meta: AdapterInvocationMeta) => unknown) | null;
  onSpawn?: ((meta: { pid: number; processGroupId: number | null; startedAt: string }) => unknown) | null;
  /** Aborting it cancels the run (its Job is deleted; the result says `cancelled`), once
   * `onCancellationReady` has resolved. Without `onCancellationReady` it is not watched. */
  signal?: AbortSignal;
  onCancellationReady?: () => Promise<void>;
}

export type AdapterExecutionErrorFamily =
  | "transient_upstream"
  | "provider_quota"
  | "model_refusal"
  | "refresh_token_reused"
  | "refresh_token_expired"
  | "refresh_token_invalidated";

export type AdapterBillingType =
  | "api"
  | "subscription"
  | "metered_api"
  | "subscription_included"
  | "subscription_overage"
  | "credits"
  | "fixed"
  | "unknown";

/** Token counts of the run (Paperclip's `UsageSummary`). */
export interface UsageSummary {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
}

/** What `execute` resolves with, success or failure (SPEC §3, §7). */
export interface AdapterExecutionResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  errorMessage?: string | null;
  /** One of the SPEC's codes (`k8s_config_invalid`, `cancelled`, `timeout`, ...). Absent with an
   * `errorMessage` for an internal error, which Paperclip records as `adapter_failed`. */
  errorCode?: string | null;
  errorFamily?: AdapterExecutionErrorFamily | null;
  errorMeta?: Record<string, unknown>;
  usage?: UsageSummary;
  usageBasis?: "per_run" | "session_cumulative" | null;
  sessionId?: string | null;
  sessionParams?: Record<string, unknown> | null;
  sessionDisplayId?: string | null;
  provider?: string | null;
  biller?: string | null;
  model?: string | null;
  billingType?: AdapterBillingType | null;
  costUsd?: number | null;
  resultJson?: Record<string, unknown> | null;
  summary?: string | null;
  clearSession?: boolean;
}

/** The adapter module Paperclip registers. */
export interface ClaudeK8sAdapter {
  type: "claude_k8s";
  label: "Claude (Kubernetes)";
  supportsLocalAgentJwt: true;
  /** Runs one heartbeat as a Kubernetes Job. Never rejects for bad input or failed runs. */
  execute(ctx: AdapterExecutionContext): Promise<AdapterExecutionResult>;
}

/** Paperclip's entry point: called once, with no arguments. */
export function createServerAdapter(): ClaudeK8sAdapter;
