// Paperclip loads this module with import() and calls createServerAdapter() (SPEC §1, §2).
// Everything a run does happens in the native addon; this file loads it, wires the server's
// cancellation (signal, or polling on servers without one) to it, and assembles the module
// object from the small lib/ modules.
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { createRequire } from "node:module";
import { binaryPath } from "./scripts/binary.mjs";
import { pollForCancellation } from "./lib/cancel-poll.js";
import { prepareBundle, sharedDir } from "./lib/bundle.js";
import { configSchema, configurationDoc } from "./lib/config-fields.js";
import { currentModels, listModels } from "./lib/models.js";
import { sessionCodec, sessionManagement } from "./lib/session.js";
import { desiredSkillKeys, listSkills, syncSkills } from "./lib/skills.js";

const native = loadNative();

function loadNative() {
  const path = binaryPath();
  try {
    return createRequire(import.meta.url)(path);
  } catch (err) {
    throw new Error(
      `paperclip-claude-k8s: cannot load its native addon ${path}: ${err.message}. ` +
        "Reinstall the package, or run `npm run build` in it (needs cargo).",
      { cause: err },
    );
  }
}

/**
 * Runs one heartbeat as a Kubernetes Job. Always resolves: bad input, callback failures and
 * internal errors come back as `errorCode` / `errorMessage` (SPEC §3, §9).
 *
 * Cancellation: when the server passes `signal` and `onCancellationReady`, we opt in by awaiting
 * `onCancellationReady()` before any work starts; an abort then cancels the run by id
 * (`cancelRun`), and the run resolves with `errorCode: "cancelled"` once its Job is deleted.
 * Servers without a signal are polled for the run's status instead (lib/cancel-poll.js).
 */
async function execute(ctx) {
  let cancellation;
  try {
    cancellation = cancellationOptIn(ctx);
  } catch (err) {
    return unreadableCtx(err);
  }
  if (cancellation) {
    try {
      await cancellation.ready();
    } catch (err) {
      return failure("adapter_callback_failed", `onCancellationReady callback failed: ${messageOf(err)}`);
    }
  }
  ctx = await withBundle(ctx);
  let run;
  try {
    // The addon registers the run under its id before execute returns, so a cancel from here on
    // reaches it.
    run = native.execute(ctx);
  } catch (err) {
    // The addon words every wrong type itself; what throws here is a getter or Proxy trap of ctx.
    return unreadableCtx(err);
  }
  const stop = cancellation ? watchSignal(cancellation) : watchRunStatusSafely(ctx);
  try {
    return await run;
  } finally {
    stop();
  }
}

/**
 * `ctx` with its instructions file and desired skills materialised on the shared volume
 * (lib/bundle.js): `config.instructionsFilePath` becomes the bundle's copy and
 * `config.paperclipBundleDir` the directory for `--add-dir`, both as the Job's pod sees them.
 * Unchanged when there is nothing to deliver; problems become stderr notes, never a failed run.
 */
async function withBundle(ctx) {
  let config;
  let wantsInstructions;
  try {
    config = ctx?.config;
    if (typeof config !== "object" || config === null) return ctx;
    wantsInstructions = typeof config.instructionsFilePath === "string" && config.instructionsFilePath.trim() !== "";
    if (!wantsInstructions && desiredSkillKeys(config).length === 0) return ctx;
  } catch {
    // A ctx whose getters throw: the addon words that as k8s_config_invalid.
    return ctx;
  }
  try {
    const shared = await sharedDir();
    if (!shared) return withoutServerFiles(ctx, wantsInstructions);
    const bundle = await prepareBundle(config, shared);
    for (const note of bundle?.notes ?? []) logQuietly(ctx, `[claude_k8s] ${note}\n`);
    if (!bundle?.instructionsFilePath && !bundle?.addDir) return ctx;
    const next = { ...config };
    if (bundle.instructionsFilePath) next.instructionsFilePath = bundle.instructionsFilePath;
    if (bundle.addDir) next.paperclipBundleDir = bundle.addDir;
    return { ...ctx, config: next };
  } catch (err) {
    logQuietly(ctx, `[claude_k8s] could not materialise instructions and skills: ${messageOf(err)}\n`);
    return ctx;
  }
}

/**
 * Without a shared volume the Job cannot see the server's files: an instructions file the server
 * can read (Paperclip's managed bundle) is left out, since `claude` refuses to start with a
 * missing `--append-system-prompt-file`; one the server cannot read may be in the image and is
 * passed as configured. Both cases, and undelivered skills, are said on stderr.
 */
async function withoutServerFiles(ctx, wantsInstructions) {
  const why = "no shared volume is visible here (/paperclip, or set PAPERCLIP_K8S_SHARED_DIR to where the Jobs' /paperclip volume is mounted)";
  if (desiredSkillKeys(ctx.config).length > 0) logQuietly(ctx, `[claude_k8s] skills are not delivered: ${why}\n`);
  if (!wantsInstructions) return ctx;
  const file = ctx.config.instructionsFilePath;
  const onServer = await access(file, constants.R_OK).then(() => true, () => false);
  if (!onServer) return ctx;
  logQuietly(ctx, `[claude_k8s] instructions file ${file} is on the Paperclip server only and ${why}: the run goes without it\n`);
  const { instructionsFilePath: _, ...config } = ctx.config;
  return { ...ctx, config };
}

/** Cancels the run when the server's signal aborts; returns the unsubscribe. */
function watchSignal({ runId, signal }) {
  const abort = () => native.cancelRun(runId);
  if (signal.aborted) abort();
  else signal.addEventListener("abort", abort, { once: true });
  return () => signal.removeEventListener("abort", abort);
}

/**
 * On servers without `ctx.signal`, polls the run's status with the agent's JWT; needs
 * `PAPERCLIP_API_URL` (the server sets it in its own env at startup) and `ctx.authToken`
 * (minted because `supportsLocalAgentJwt` is true). Returns the stop function.
 */
function watchRunStatus(ctx) {
  const apiUrl = process.env.PAPERCLIP_API_URL;
  const runId = ctx?.runId;
  const authToken = ctx?.authToken;
  const usable = (v) => typeof v === "string" && v.trim() !== "";
  if (![apiUrl, runId, authToken].every(usable)) return () => {};
  return pollForCancellation({
    apiUrl,
    runId,
    authToken,
    onCancelled: () => native.cancelRun(runId),
    onProblem: (message) => logQuietly(ctx, `[claude_k8s] cannot watch for cancellation: ${message}; will keep trying\n`),
  });
}

/** `watchRunStatus(ctx)`, or no watch when ctx cannot be read again (a getter that throws). */
function watchRunStatusSafely(ctx) {
  try {
    return watchRunStatus(ctx);
  } catch {
    return () => {};
  }
}

/** A stderr line through `ctx.onLog`, ignoring whatever the callback does wrong. */
function logQuietly(ctx, line) {
  try {
    Promise.resolve(ctx.onLog("stderr", line)).catch(() => {});
  } catch {
    // The run reports a broken onLog itself.
  }
}

/** The signal to watch, when the server offers signal-based cancellation and ctx is usable. */
function cancellationOptIn(ctx) {
  const runId = ctx?.runId;
  const signal = ctx?.signal;
  const ready = ctx?.onCancellationReady;
  const isSignal = typeof signal?.aborted === "boolean" && typeof signal.addEventListener === "function";
  if (typeof runId !== "string" || !isSignal || typeof ready !== "function") return undefined;
  return { runId, signal, ready: () => ready.call(ctx) };
}

function unreadableCtx(err) {
  return failure("k8s_config_invalid", `ctx could not be read: ${messageOf(err)}`);
}

function messageOf(err) {
  return err instanceof Error ? err.message : String(err);
}

/** A failed result in the addon's shape; the codes are the SPEC's (src/error.rs). */
function failure(errorCode, errorMessage) {
  return { exitCode: null, signal: null, timedOut: false, errorCode, errorMessage };
}

/**
 * Runs the SPEC §8 checks for `ctx.config` against the real cluster. Always resolves, with
 * `status: "fail"` and an error check when something is wrong, including ctx itself.
 */
async function testEnvironment(ctx) {
  try {
    return await native.testEnvironment(ctx);
  } catch (err) {
    return {
      adapterType: "claude_k8s",
      status: "fail",
      checks: [{ code: "k8s_config_invalid", level: "error", message: `ctx could not be read: ${messageOf(err)}` }],
      testedAt: new Date().toISOString(),
    };
  }
}

/** The adapter module Paperclip registers under `type`. */
export function createServerAdapter() {
  return {
    type: "claude_k8s",
    label: "Claude (Kubernetes)",
    execute,
    testEnvironment,
    sessionCodec,
    sessionManagement,
    // The run's auth token reaches Claude as PAPERCLIP_API_KEY through a per-Job Secret, and
    // lets lib/cancel-poll.js read the run's status on servers without ctx.signal.
    supportsLocalAgentJwt: true,
    models: currentModels(),
    listModels,
    listSkills,
    syncSkills,
    supportsInstructionsBundle: true,
    instructionsPathKey: "instructionsFilePath",
    getConfigSchema: configSchema,
    agentConfigurationDoc: configurationDoc(),
  };
}
