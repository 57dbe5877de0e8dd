// The instructions bundle and skills of a run, materialised on the shared volume the Job mounts at
// /paperclip (SPEC §2, §4 `instructionsFilePath`): Paperclip keeps both on the server's own disk,
// which a Job's pod cannot read. Each bundle directory is named by the SHA-256 of its contents, so
// runs with the same instructions and skills share it, a changed file yields a new directory, and a
// directory, once renamed into place, never changes.
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { desiredSkillKeys, runtimeSkillEntries } from "./skills.js";

/** Where the Job mounts the shared volume (src/plan/manifest.rs WORKSPACE_PATH). */
export const POD_SHARED_DIR = "/paperclip";

/** Bundles live here, relative to the shared volume. */
const BUNDLES = path.posix.join(".claude-k8s", "bundles");

/** Instructions files larger than this are refused: they would swamp the system prompt. */
const MAX_INSTRUCTIONS_BYTES = 1024 * 1024;

/**
 * The server-side directory where the Jobs' /paperclip volume is visible:
 * `$PAPERCLIP_K8S_SHARED_DIR`, else `/paperclip` when it exists (Paperclip in a pod with the
 * shared PVC), else null.
 */
export async function sharedDir(env = process.env) {
  const configured = env.PAPERCLIP_K8S_SHARED_DIR?.trim();
  const candidate = configured || POD_SHARED_DIR;
  const stat = await fs.stat(candidate).catch(() => null);
  return stat?.isDirectory() ? candidate : null;
}

/** Every regular file under `dir` (symlinks followed), as sorted relative posix paths. */
async function filesUnder(dir, prefix = "") {
  const out = [];
  const entries = await fs.readdir(path.join(dir, prefix), { withFileTypes: true });
  for (const entry of entries) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const stat = await fs.stat(path.join(dir, rel));
    if (stat.isDirectory()) out.push(...(await filesUnder(dir, rel)));
    else if (stat.isFile()) out.push(rel);
  }
  return out.sort();
}

/**
 * What the bundle holds, as `[relative path, contents]` pairs: the instructions file plus its
 * sibling files (`./HEARTBEAT.md` ...) under `instructions/`, and each desired skill under
 * `.claude/skills/<runtimeName>/`. Problems are returned as notes, never thrown.
 */
async function collect(config) {
  const files = [];
  const notes = [];
  let instructions = null;
  const instructionsPath = typeof config.instructionsFilePath === "string" ? config.instructionsFilePath.trim() : "";
  if (instructionsPath) {
    try {
      const dir = path.dirname(instructionsPath);
      const main = path.basename(instructionsPath);
      const body = await fs.readFile(instructionsPath);
      if (body.length > MAX_INSTRUCTIONS_BYTES) throw new Error(`it is ${body.length} bytes, over ${MAX_INSTRUCTIONS_BYTES}`);
      for (const rel of await filesUnder(dir)) {
        if (rel === main) continue;
        const stat = await fs.stat(path.join(dir, rel));
        if (stat.size <= MAX_INSTRUCTIONS_BYTES) files.push([`instructions/${rel}`, await fs.readFile(path.join(dir, rel))]);
      }
      instructions = { rel: `instructions/${main}`, body };
    } catch (err) {
      notes.push(`could not read instructions file ${instructionsPath} here (${err.message}); passed to the Job as configured`);
    }
  }
  const entries = runtimeSkillEntries(config);
  const byKey = new Map(entries.map((e) => [e.key, e]));
  for (const key of desiredSkillKeys(config, entries)) {
    const entry = byKey.get(key);
    if (!entry || entry.missing) {
      notes.push(`skill "${key}" is enabled but its files are unavailable; not delivered`);
      continue;
    }
    try {
      for (const rel of await filesUnder(entry.source)) {
        files.push([`.claude/skills/${entry.runtimeName}/${rel}`, await fs.readFile(path.join(entry.source, rel))]);
      }
    } catch (err) {
      notes.push(`could not read skill "${key}" at ${entry.source}: ${err.message}; not delivered`);
    }
  }
  return { files, instructions, notes };
}

/**
 * Materialises the run's bundle under `shared` and returns what the Job needs, in pod paths:
 * `{instructionsFilePath, addDir, notes}` (either path null when there is nothing to pass), or
 * null when the config asks for neither instructions nor skills.
 */
export async function prepareBundle(config, shared) {
  const { files, instructions, notes } = await collect(config);
  if (!instructions && files.length === 0) {
    return notes.length ? { instructionsFilePath: null, addDir: null, notes } : null;
  }
  const hash = createHash("sha256").update("claude-k8s-bundle:v1\n");
  const all = instructions ? [[instructions.rel, instructions.body], ...files] : files;
  for (const [rel, body] of all) hash.update(`${rel}\n${body.length}\n`).update(body);
  const key = hash.digest("hex");
  const podDir = path.posix.join(POD_SHARED_DIR, BUNDLES, key);
  const target = path.join(shared, BUNDLES, key);
  if (!(await fs.stat(target).catch(() => null))) {
    const staging = `${target}.${process.pid}.${Date.now()}.tmp`;
    try {
      for (const [rel, body] of all) {
        const file = path.join(staging, rel);
        await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
        await fs.writeFile(file, body, { mode: 0o644 });
      }
      if (instructions) {
        const podFile = path.posix.join(podDir, instructions.rel);
        const directive = `\n\nThe above agent instructions were loaded from ${podFile}. Resolve relative file references (./HEARTBEAT.md, ./SOUL.md, ./TOOLS.md ...) from ${path.posix.dirname(podFile)}/.\n`;
        await fs.appendFile(path.join(staging, instructions.rel), directive);
      }
      await fs.rename(staging, target).catch(async (err) => {
        // Another run renamed the same contents into place first: theirs is as good as ours.
        if (!(await fs.stat(target).catch(() => null))) throw err;
      });
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }
  return {
    instructionsFilePath: instructions ? path.posix.join(podDir, instructions.rel) : null,
    addDir: files.some(([rel]) => rel.startsWith(".claude/")) ? podDir : null,
    notes,
  };
}
