// The models the UI offers for `model` (SPEC §2): claude_local's lists
// (@paperclipai/adapter-claude-local dist/index.js and dist/server/models.js, 2026.916.1). The
// CLI runs in the Job, so the ids are passed to it as they are; which list applies is decided by
// the server's env, as claude_local does, since the agents usually share its provider settings.

/** Direct Anthropic API ids. */
export const DIRECT_MODELS = [
  { id: "claude-opus-4-8", label: "Claude Opus 4.8" },
  { id: "claude-sonnet-5", label: "Claude Sonnet 5" },
  { id: "claude-fable-5-1", label: "Claude Fable 5.1" },
  { id: "claude-fable-5", label: "Claude Fable 5" },
  { id: "claude-mythos-5", label: "Claude Mythos 5" },
  { id: "claude-opus-5", label: "Claude Opus 5" },
  { id: "claude-opus-4-7", label: "Claude Opus 4.7" },
  { id: "claude-opus-4-6", label: "Claude Opus 4.6" },
  { id: "claude-sonnet-4-6", label: "Claude Sonnet 4.6" },
  { id: "claude-sonnet-4-5", label: "Claude Sonnet 4.5" },
  { id: "claude-haiku-4-5", label: "Claude Haiku 4.5" },
];

/** AWS Bedrock inference-profile ids (region-qualified). */
export const BEDROCK_MODELS = [
  { id: "us.anthropic.claude-opus-4-8-v1", label: "Bedrock Opus 4.8" },
  { id: "us.anthropic.claude-fable-5-1", label: "Bedrock Fable 5.1" },
  { id: "us.anthropic.claude-fable-5-v1", label: "Bedrock Fable 5" },
  { id: "us.anthropic.claude-opus-4-6-v1", label: "Bedrock Opus 4.6" },
  { id: "us.anthropic.claude-sonnet-4-5-20250929-v2:0", label: "Bedrock Sonnet 4.5" },
  { id: "us.anthropic.claude-haiku-4-5-20251001-v1:0", label: "Bedrock Haiku 4.5" },
];

/** Whether `env` selects Bedrock the way the Claude CLI reads it. */
export function usesBedrock(env) {
  const flag = env.CLAUDE_CODE_USE_BEDROCK;
  const baseUrl = env.ANTHROPIC_BEDROCK_BASE_URL;
  return flag === "1" || flag === "true" || (typeof baseUrl === "string" && baseUrl.trim() !== "");
}

/** Bedrock ids when the server's env selects Bedrock, else the direct ids (fresh copies). */
export function currentModels() {
  const models = usesBedrock(process.env) ? BEDROCK_MODELS : DIRECT_MODELS;
  return models.map((m) => ({ ...m }));
}

/** `listModels()`: `currentModels()` as the server asks for it. */
export async function listModels() {
  return currentModels();
}
