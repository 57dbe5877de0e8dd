// Paperclip loads this module with import() and calls createServerAdapter() (SPEC §1, §2).
// Everything a run does happens in the native addon; this file only loads it and wires the
// server's cancellation signal to it.
import { createRequire } from "node:module";
import { binaryPath } from "./scripts/binary.mjs";

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
 */
async function execute(ctx) {
  const runId = typeof ctx?.runId === "string" ? ctx.runId : undefined;
  const signal = isAbortSignal(ctx?.signal) ? ctx.signal : undefined;
  const watchSignal = runId !== undefined && signal !== undefined && typeof ctx.onCancellationReady === "function";
  if (watchSignal) {
    try {
      await ctx.onCancellationReady();
    } catch (err) {
      return callbackFailed("onCancellationReady", err);
    }
  }
  // The addon registers the run under its id before execute returns, so an abort from here on
  // reaches it.
  const run = native.execute(ctx);
  if (!watchSignal) return run;
  const abort = () => native.cancelRun(runId);
  if (signal.aborted) abort();
  else signal.addEventListener("abort", abort, { once: true });
  try {
    return await run;
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

function isAbortSignal(value) {
  return typeof value?.aborted === "boolean" && typeof value.addEventListener === "function";
}

/** The result for a server callback that threw or rejected, worded as the addon words them. */
function callbackFailed(callback, err) {
  const message = err instanceof Error ? err.message : String(err);
  return {
    exitCode: null,
    signal: null,
    timedOut: false,
    errorCode: "adapter_callback_failed",
    errorMessage: `${callback} callback failed: ${message}`,
  };
}

/** The adapter module Paperclip registers under `type`. */
export function createServerAdapter() {
  return {
    type: "claude_k8s",
    label: "Claude (Kubernetes)",
    // The run's auth token reaches Claude as PAPERCLIP_API_KEY through a per-Job Secret.
    supportsLocalAgentJwt: true,
    execute,
  };
}
