// The benchmark's Kubernetes identity and the apiserver's audit log of its requests.
//
// The adapter talks to the cluster as user `bench` (group system:masters); an audit policy logs
// that user's requests (level Metadata) and nobody else's, so counting the log's events of `bench`
// counts exactly the requests the adapter made.
//
// Two ways to get there:
// - the testbed's own apiserver, when `testbed/up` started it with the audit flags (run/audit.log)
//   and issued run/bench.kubeconfig;
// - otherwise (a cluster started before those flags existed, which must not be restarted under the
//   other users of the shared testbed) a second kube-apiserver on the same etcd, started here with
//   the main one's flags plus the audit flags, on port SIDE_PORT, and stopped at the end. Kubernetes
//   runs several apiservers on one etcd routinely (HA); the adapter's requests are then served by it.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";

/** The testbed's state directory (as in testbed/lib.sh). */
export const TESTBED_DIR = process.env.TESTBED_DIR ?? "/var/tmp/paperclip-claude-k8s-testbed";
const RUN = join(TESTBED_DIR, "run");
const PKI = join(TESTBED_DIR, "pki");
/** Port of the side apiserver, next to the testbed's 6443. */
const SIDE_PORT = Number(process.env.BENCH_SIDE_APISERVER_PORT ?? 6444);
/** How long the side apiserver may take to answer /readyz (about 10 s on 2 busy cores). */
const SIDE_READY_MS = 90_000;
/** The audit user. */
export const BENCH_USER = "bench";

const POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [${BENCH_USER}]
- level: None
`;

/** Reads the client certificate, key, CA and server of a kubeconfig written by testbed/up. */
export function readKubeconfig(path) {
  const text = readFileSync(path, "utf8");
  const field = (name) => {
    const m = text.match(new RegExp(`${name}: (\\S+)`));
    if (!m) throw new Error(`${path}: no ${name}`);
    return m[1];
  };
  const b64 = (name) => Buffer.from(field(name), "base64");
  return {
    server: field("server"),
    ca: b64("certificate-authority-data"),
    cert: b64("client-certificate-data"),
    key: b64("client-key-data"),
  };
}

/** One HTTPS request to an apiserver with a kubeconfig's identity; resolves {status, body}. */
export function request(kc, method, path, body) {
  const url = new URL(path, kc.server);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method, ca: kc.ca, cert: kc.cert, key: kc.key, headers: body ? { "content-type": "application/json" } : {} },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

function mainApiserverArgs() {
  const pid = readFileSync(join(RUN, "apiserver.pid"), "utf8").trim();
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

function writeKubeconfig(path, server, name) {
  const b64 = (f) => readFileSync(f).toString("base64");
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(join(PKI, "ca.crt"))}
users:
- name: ${BENCH_USER}
  user:
    client-certificate-data: ${b64(join(PKI, `${name}.crt`))}
    client-key-data: ${b64(join(PKI, `${name}.key`))}
contexts:
- name: ${BENCH_USER}@testbed
  context: {cluster: testbed, user: ${BENCH_USER}, namespace: default}
current-context: ${BENCH_USER}@testbed
`,
  );
}

/** Issues pki/bench-side.{key,crt} for CN bench, O system:masters, signed by the testbed CA. */
function issueBenchCert(name) {
  const key = join(PKI, `${name}.key`);
  const csr = join(PKI, `${name}.csr`);
  const crt = join(PKI, `${name}.crt`);
  const ext = join(PKI, `${name}.cnf`);
  writeFileSync(ext, "[ext]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
  const run = (...args) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  run("genrsa", "-out", key, "2048");
  run("req", "-new", "-key", key, "-subj", `/CN=${BENCH_USER}/O=system:masters`, "-out", csr);
  run("x509", "-req", "-in", csr, "-CA", join(PKI, "ca.crt"), "-CAkey", join(PKI, "ca.key"),
    "-set_serial", `0x${Date.now().toString(16)}`, "-days", "30", "-extfile", ext, "-extensions", "ext", "-out", crt);
}

async function waitReady(kc, child, logPath) {
  const deadline = Date.now() + SIDE_READY_MS;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`side apiserver exited with ${child.exitCode}; log: ${logPath}`);
    }
    try {
      const { status } = await request(kc, "GET", "/readyz");
      if (status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`side apiserver not ready after ${SIDE_READY_MS} ms; log: ${logPath}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Sets up the audited identity. Returns { kubeconfig, mode, events(fromMs, toMs), stop() }.
 * `events` reads the audit log and returns the bench user's requests received in [fromMs, toMs],
 * one per auditID.
 */
export async function startAudit() {
  const args = mainApiserverArgs();
  const mainAudited = args.some((a) => a.startsWith("--audit-log-path="));
  if (mainAudited && existsSync(join(RUN, "bench.kubeconfig"))) {
    const logPath = args.find((a) => a.startsWith("--audit-log-path=")).split("=")[1];
    return { kubeconfig: join(RUN, "bench.kubeconfig"), mode: "testbed apiserver", events: (a, b) => readEvents(logPath, a, b), stop: async () => {} };
  }

  const dir = join(RUN, "bench-side-apiserver");
  mkdirSync(dir, { recursive: true });
  const policy = join(dir, "audit-policy.yaml");
  const logPath = join(dir, "audit.log");
  writeFileSync(policy, POLICY);
  writeFileSync(logPath, "");
  issueBenchCert("bench-side");
  const kubeconfig = join(dir, "bench.kubeconfig");
  writeKubeconfig(kubeconfig, `https://127.0.0.1:${SIDE_PORT}`, "bench-side");

  const [binary, ...flags] = args;
  const sideFlags = flags
    .filter((f) => !f.startsWith("--secure-port="))
    .concat([`--secure-port=${SIDE_PORT}`, `--audit-policy-file=${policy}`, `--audit-log-path=${logPath}`]);
  const apiserverLog = join(dir, "apiserver.log");
  const out = openSync(apiserverLog, "w");
  const child = spawn(binary, sideFlags, { stdio: ["ignore", out, out], detached: true });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    process.kill(child.pid, "SIGTERM");
    const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid, "SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitReady(readKubeconfig(kubeconfig), child, apiserverLog);
  } catch (err) {
    await stop();
    throw err;
  }
  return { kubeconfig, mode: `side apiserver :${SIDE_PORT} (pid ${child.pid}) on the testbed's etcd`, events: (a, b) => readEvents(logPath, a, b), stop };
}

function readEvents(logPath, fromMs, toMs) {
  const byId = new Map();
  for (const line of readFileSync(logPath, "utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line);
    if (e.user?.username !== BENCH_USER) continue;
    const at = Date.parse(e.requestReceivedTimestamp);
    if (at < fromMs || at > toMs) continue;
    const prev = byId.get(e.auditID);
    if (!prev || e.stage === "ResponseComplete") byId.set(e.auditID, e);
  }
  return [...byId.values()];
}

/** "verb resource[/subresource]" of an audit event (watches have verb "watch"). */
export function requestKind(e) {
  const r = e.objectRef;
  const what = r ? `${r.resource}${r.subresource ? `/${r.subresource}` : ""}` : e.requestURI.split("?")[0];
  return `${e.verb} ${what}`;
}
