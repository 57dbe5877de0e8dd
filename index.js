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
  let run;
  try {
    // The addon registers the run under its id before execute returns, so an abort from here on
    // reaches it.
    run = native.execute(ctx);
  } catch (err) {
    // The addon words every wrong type itself; what throws here is a getter or Proxy trap of ctx.
    return unreadableCtx(err);
  }
  if (!cancellation) return run;
  const { runId, signal } = cancellation;
  const abort = () => native.cancelRun(runId);
  if (signal.aborted) abort();
  else signal.addEventListener("abort", abort, { once: true });
  try {
    return await run;
  } finally {
    signal.removeEventListener("abort", abort);
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
