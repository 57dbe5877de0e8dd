// Paperclip skills for claude_k8s (SPEC §2: listSkills / syncSkills, mode "ephemeral"). The
// server passes the company's skills in `config.paperclipRuntimeSkills` ({key, runtimeName,
// source, sourceStatus?, missingDetail?, versionId?}) and the agent's choice in
// `config.paperclipSkillSync.desiredSkills`; nothing is installed persistently: each run gets
// the desired skills afresh (lib/bundle.js). Mirrors adapter-utils' runtime-mounted snapshot as
// claude_local uses it (server-utils.js buildRuntimeMountedSkillSnapshot, 2026.916.1).

/** The operational skill legacy adapters always mount: agents reach the Paperclip API with it. */
export const OPERATIONAL_SKILL_KEY = "paperclipai/paperclip/paperclip";

function nonEmpty(value) {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : null;
}

/** The company's skills the server offered, well-formed entries only. */
export function runtimeSkillEntries(config) {
  const raw = Array.isArray(config?.paperclipRuntimeSkills) ? config.paperclipRuntimeSkills : [];
  const entries = [];
  for (const item of raw) {
    if (typeof item !== "object" || item === null) continue;
    const key = nonEmpty(item.key) ?? nonEmpty(item.name);
    const runtimeName = nonEmpty(item.runtimeName) ?? nonEmpty(item.name);
    const source = nonEmpty(item.source);
    if (!key || !runtimeName || !source) continue;
    entries.push({
      key,
      runtimeName,
      source,
      versionId: nonEmpty(item.versionId),
      currentVersionId: nonEmpty(item.currentVersionId),
      missing: item.sourceStatus === "missing",
      missingDetail: nonEmpty(item.missingDetail),
    });
  }
  return entries;
}

/** Desired references as stored (`"key"` or `{key, versionId}`), deduplicated. */
function desiredReferences(config) {
  const desired = config?.paperclipSkillSync?.desiredSkills;
  if (!Array.isArray(desired)) return [];
  const keys = desired.map((d) => nonEmpty(typeof d === "string" ? d : d?.key)).filter(Boolean);
  return [...new Set(keys)];
}

/** A reference as a key of `entries`: exact key, else a unique runtime name or last segment. */
function canonical(reference, entries) {
  const ref = reference.toLowerCase();
  const exact = entries.find((e) => e.key.toLowerCase() === ref);
  if (exact) return exact.key;
  for (const pick of [(e) => e.runtimeName.toLowerCase(), (e) => e.key.toLowerCase().split("/").pop()]) {
    const matches = entries.filter((e) => pick(e) === ref);
    if (matches.length === 1) return matches[0].key;
  }
  return ref;
}

/** The keys to deliver: the operational skill when offered, then the agent's choice. */
export function desiredSkillKeys(config, entries = runtimeSkillEntries(config)) {
  const chosen = desiredReferences(config).map((r) => canonical(r, entries));
  const operational = entries.find((e) => e.key.toLowerCase() === OPERATIONAL_SKILL_KEY);
  const keys = operational ? [operational.key, ...chosen] : chosen;
  return [...new Set(keys)];
}

const DELIVERED =
  "Copied to the shared /paperclip volume and passed to Claude with --add-dir on the next run.";

/** Paperclip's `AdapterSkillSnapshot` for `config`. */
export function skillSnapshot(config) {
  const entries = runtimeSkillEntries(config);
  const desired = desiredSkillKeys(config, entries);
  const desiredSet = new Set(desired);
  const byKey = new Map(entries.map((e) => [e.key, e]));
  const origin = { origin: "company_managed", originLabel: "Managed by Paperclip", readOnly: false };
  const out = entries.map((e) => ({
    key: e.key,
    runtimeName: e.runtimeName,
    versionId: e.versionId,
    currentVersionId: e.currentVersionId,
    desired: desiredSet.has(e.key),
    managed: true,
    state: e.missing ? "missing" : desiredSet.has(e.key) ? "configured" : "available",
    sourcePath: e.missing ? null : e.source,
    targetPath: null,
    detail: e.missing
      ? e.missingDetail ?? "Paperclip cannot find this skill's files."
      : desiredSet.has(e.key) ? DELIVERED : null,
    ...origin,
  }));
  const warnings = [];
  for (const key of desired) {
    if (byKey.has(key)) continue;
    warnings.push(`Desired skill "${key}" is not available from the Paperclip skills directory.`);
    out.push({
      key,
      runtimeName: null,
      desired: true,
      managed: true,
      state: "missing",
      sourcePath: null,
      targetPath: null,
      detail: "Paperclip cannot find this skill in the company's skills.",
      origin: "external_unknown",
      originLabel: "External or unavailable",
      readOnly: false,
    });
  }
  out.sort((a, b) => a.key.localeCompare(b.key));
  return {
    adapterType: "claude_k8s",
    supported: true,
    mode: "ephemeral",
    desiredSkills: desired,
    desiredSkillEntries: desired.map((key) => ({ key, versionId: byKey.get(key)?.versionId ?? null })),
    entries: out,
    warnings,
  };
}

/** `listSkills(ctx)`. */
export async function listSkills(ctx) {
  return skillSnapshot(ctx?.config ?? {});
}

/**
 * `syncSkills(ctx, desiredSkills)`: the server has already stored the choice in
 * `ctx.config.paperclipSkillSync`; ephemeral skills need no installing, so this reports.
 */
export async function syncSkills(ctx, _desiredSkills) {
  return skillSnapshot(ctx?.config ?? {});
}
