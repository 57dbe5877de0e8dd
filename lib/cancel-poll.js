// Cancellation on servers without `ctx.signal` (2026.824.1 and older; docs/paperclip-server.md
// (c)): the server marks the run `cancelled` and tells the adapter nothing, so while a run is
// pending we read the run's status with the agent's JWT and cancel it ourselves when it says so.
// Only `cancelled` / `cancelling` count: `interrupted` is a server shutdown, after which the Job
// must keep running so the next run can reattach (SPEC §6).

/** How often the run's status is read: a cancelled Job stops within this plus its deletion. */
export const POLL_INTERVAL_MS = 2_000;

/** Statuses that mean "stop the Job". */
const CANCELLED = new Set(["cancelled", "cancelling"]);

/**
 * Reads `GET {apiUrl}/api/heartbeat-runs/{runId}` every POLL_INTERVAL_MS until `stop()` is
 * called; calls `onCancelled()` once (and stops) when the status says cancelled. A failed read
 * is reported once through `onProblem(message)` and polling goes on. `stop()` clears the timer
 * and aborts a read in flight, so nothing keeps the process alive afterwards.
 */
export function pollForCancellation({ apiUrl, runId, authToken, onCancelled, onProblem }) {
  const url = `${apiUrl.replace(/\/+$/, "")}/api/heartbeat-runs/${encodeURIComponent(runId)}`;
  let stopped = false;
  let timer;
  let inFlight;
  let reported = false;

  const report = (message) => {
    if (reported) return;
    reported = true;
    onProblem(message);
  };

  const readStatus = async () => {
    inFlight = new AbortController();
    try {
      const response = await fetch(url, {
        headers: { Authorization: `Bearer ${authToken}`, Accept: "application/json" },
        signal: inFlight.signal,
      });
      if (!response.ok) {
        await response.body?.cancel();
        report(`reading ${url} answered HTTP ${response.status}`);
        return undefined;
      }
      const run = await response.json();
      return typeof run?.status === "string" ? run.status : undefined;
    } catch (err) {
      if (!stopped) report(`reading ${url} failed: ${err?.cause?.message ?? err?.message ?? err}`);
      return undefined;
    } finally {
      inFlight = undefined;
    }
  };

  const tick = async () => {
    const status = await readStatus();
    if (stopped) return;
    if (CANCELLED.has(status)) {
      stopped = true;
      onCancelled();
      return;
    }
    timer = setTimeout(tick, POLL_INTERVAL_MS);
  };

  timer = setTimeout(tick, POLL_INTERVAL_MS);
  return function stop() {
    stopped = true;
    clearTimeout(timer);
    inFlight?.abort();
  };
}
