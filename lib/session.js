// How Paperclip stores a claude_k8s session between runs (SPEC §2, §3): the same params as
// claude_local's codec (@paperclipai/adapter-claude-local dist/server/index.js), so an agent
// switched between the two keeps its session. Snake-case and `workdir`/`folder` aliases are read
// for records written by older adapters.

function nonEmpty(value) {
  return typeof value === "string" && value.trim().length > 0 ? value.trim() : null;
}

/** `{sessionId, cwd?, workspaceId?, repoUrl?, repoRef?}` from a stored record, or null. */
function normalize(raw) {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const sessionId = nonEmpty(raw.sessionId) ?? nonEmpty(raw.session_id);
  if (!sessionId) return null;
  const fields = {
    cwd: nonEmpty(raw.cwd) ?? nonEmpty(raw.workdir) ?? nonEmpty(raw.folder),
    workspaceId: nonEmpty(raw.workspaceId) ?? nonEmpty(raw.workspace_id),
    repoUrl: nonEmpty(raw.repoUrl) ?? nonEmpty(raw.repo_url),
    repoRef: nonEmpty(raw.repoRef) ?? nonEmpty(raw.repo_ref),
  };
  const params = { sessionId };
  for (const [key, value] of Object.entries(fields)) if (value) params[key] = value;
  return params;
}

/** Paperclip's `AdapterSessionCodec`. */
export const sessionCodec = {
  deserialize: normalize,
  serialize: normalize,
  getDisplayId(params) {
    return normalize(params)?.sessionId ?? null;
  },
};

/**
 * Claude resumes its own sessions (`--resume`) and compacts its context itself, so Paperclip
 * need not rotate sessions: claude_local's entry of adapter-utils' session-compaction table.
 */
export const sessionManagement = {
  supportsSessionResume: true,
  nativeContextManagement: "confirmed",
  defaultSessionCompaction: {
    enabled: true,
    maxSessionRuns: 0,
    maxRawInputTokens: 0,
    maxSessionAgeHours: 0,
  },
};
