// Types of paperclip-claude-k8s. Declared here rather than imported so the package has no
// runtime dependency; kept assignable to the types of @paperclipai/adapter-utils
// (dist/types.d.ts and session-compaction.d.ts, checked against 2026.916.1):
// AdapterExecutionContext, AdapterExecutionResult, AdapterEnvironmentTestResult,
// AdapterSessionCodec, AdapterSessionManagement, AdapterModel, AdapterSkillSnapshot,
// AdapterConfigSchema, and ServerAdapterModule for the module object.

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
  /** Called right before the Job is created (newer servers). `onSpawn` is never called: the
   * Job has no process on the server whose pid a cancel or reaper could safely signal. */
  onDispatch?: (() => unknown) | null;
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

/** `ctx` of `testEnvironment` (Paperclip's `AdapterEnvironmentTestContext`). */
export interface AdapterEnvironmentTestContext {
  companyId: string;
  adapterType: string;
  /** The adapterConfig to test (SPEC §4); JSON data only. */
  config: Record<string, unknown>;
  executionTarget?: unknown;
  environmentName?: string | null;
}

export type AdapterEnvironmentCheckLevel = "info" | "warn" | "error";

/** One finding of `testEnvironment`. */
export interface AdapterEnvironmentCheck {
  /** `k8s_api_reachable`, `k8s_api_unreachable`, `k8s_namespace_exists`, `k8s_namespace_missing`,
   * `k8s_permission_missing` (one per missing verb and resource), `k8s_permissions_ok`,
   * `k8s_secret_found`, `k8s_secret_missing`, `k8s_pvc_rwx`, `k8s_pvc_not_rwx`, `k8s_pvc_missing`,
   * `k8s_pvc_none`, `k8s_image`, `k8s_image_missing`, `k8s_config_value_unusable`, ... */
  code: string;
  level: AdapterEnvironmentCheckLevel;
  message: string;
  detail?: string | null;
  hint?: string | null;
}

/** What `testEnvironment` resolves with: `fail` with any error check, `warn` with any warning. */
export interface AdapterEnvironmentTestResult {
  adapterType: string;
  status: "pass" | "warn" | "fail";
  checks: AdapterEnvironmentCheck[];
  testedAt: string;
}

/** The session params stored between runs. */
export interface ClaudeK8sSessionParams extends Record<string, unknown> {
  sessionId: string;
  cwd?: string;
  workspaceId?: string;
  repoUrl?: string;
  repoRef?: string;
}

/** Paperclip's `AdapterSessionCodec`. */
export interface AdapterSessionCodec {
  deserialize(raw: unknown): ClaudeK8sSessionParams | null;
  serialize(params: Record<string, unknown> | null): ClaudeK8sSessionParams | null;
  getDisplayId?: (params: Record<string, unknown> | null) => string | null;
}

export interface SessionCompactionPolicy {
  enabled: boolean;
  maxSessionRuns: number;
  maxRawInputTokens: number;
  maxSessionAgeHours: number;
}

/** Paperclip's `AdapterSessionManagement`. */
export interface AdapterSessionManagement {
  supportsSessionResume: boolean;
  nativeContextManagement: "confirmed" | "likely" | "unknown" | "none";
  defaultSessionCompaction: SessionCompactionPolicy;
}

export interface AdapterModel {
  id: string;
  label: string;
}

/** `ctx` of `listSkills` / `syncSkills`. */
export interface AdapterSkillContext {
  agentId: string;
  companyId: string;
  adapterType: string;
  /** The agent's config with the server's `paperclipRuntimeSkills` and `paperclipSkillSync`. */
  config: Record<string, unknown>;
}

export type AdapterSkillState = "available" | "configured" | "installed" | "missing" | "stale" | "external";

export interface AdapterSkillEntry {
  key: string;
  runtimeName: string | null;
  versionId?: string | null;
  currentVersionId?: string | null;
  desired: boolean;
  managed: boolean;
  state: AdapterSkillState;
  origin?: "company_managed" | "user_installed" | "external_unknown";
  originLabel?: string | null;
  locationLabel?: string | null;
  readOnly?: boolean;
  sourcePath?: string | null;
  targetPath?: string | null;
  detail?: string | null;
}

export interface AdapterSkillSnapshot {
  adapterType: string;
  supported: boolean;
  mode: "unsupported" | "persistent" | "ephemeral";
  desiredSkills: string[];
  desiredSkillEntries?: Array<{ key: string; versionId: string | null }>;
  entries: AdapterSkillEntry[];
  warnings: string[];
}

export interface ConfigFieldOption {
  value: string;
  label: string;
}

/** One form field of `getConfigSchema()`. */
export interface ConfigFieldSchema {
  key: string;
  label: string;
  type: "text" | "select" | "toggle" | "number" | "textarea" | "combobox";
  options?: ConfigFieldOption[];
  default?: unknown;
  hint?: string;
  required?: boolean;
  group?: string;
  meta?: Record<string, unknown>;
}

export interface AdapterConfigSchema {
  fields: ConfigFieldSchema[];
}

/** The adapter module Paperclip registers. */
export interface ClaudeK8sAdapter {
  type: "claude_k8s";
  label: "Claude (Kubernetes)";
  /** Runs one heartbeat as a Kubernetes Job. Never rejects for bad input or failed runs. On
   * servers without `ctx.signal` it polls `GET $PAPERCLIP_API_URL/api/heartbeat-runs/:runId`
   * with `ctx.authToken` every 2 s and cancels the run when its status is `cancelled`. */
  execute(ctx: AdapterExecutionContext): Promise<AdapterExecutionResult>;
  /** SPEC §8 against the real cluster. Never rejects. */
  testEnvironment(ctx: AdapterEnvironmentTestContext): Promise<AdapterEnvironmentTestResult>;
  sessionCodec: AdapterSessionCodec;
  sessionManagement: AdapterSessionManagement;
  supportsLocalAgentJwt: true;
  /** Bedrock `us.anthropic.*` ids when the server's env has `CLAUDE_CODE_USE_BEDROCK` or
   * `ANTHROPIC_BEDROCK_BASE_URL`, else direct Anthropic ids. */
  models: AdapterModel[];
  listModels(): Promise<AdapterModel[]>;
  listSkills(ctx: AdapterSkillContext): Promise<AdapterSkillSnapshot>;
  syncSkills(ctx: AdapterSkillContext, desiredSkills: string[]): Promise<AdapterSkillSnapshot>;
  supportsInstructionsBundle: true;
  instructionsPathKey: "instructionsFilePath";
  getConfigSchema(): AdapterConfigSchema;
  /** Markdown documenting every config key. */
  agentConfigurationDoc: string;
}

/** Paperclip's entry point: called once, with no arguments. */
export function createServerAdapter(): ClaudeK8sAdapter;
