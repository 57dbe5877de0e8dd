// Builds the native addon with cargo and copies it to the package root under the name index.js
// loads. Usage: node scripts/build.mjs [--release]
//
// A release build takes about 4-5 minutes on 2 cores and cargo prints little while it links,
// so a line every HEARTBEAT_MS says the build is alive (an npm install that looks hung gets
// killed).
import { spawn } from "node:child_process";
import { copyFileSync, renameSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { binaryPath } from "./binary.mjs";

/** How often to report progress while cargo is quiet. */
const HEARTBEAT_MS = 15_000;

const root = fileURLToPath(new URL("..", import.meta.url));
const say = (line) => process.stderr.write(`[paperclip-claude-k8s] ${line}\n`);

/**
 * Runs `cargo build` for the addon and returns the path of the built shared library.
 * Rejects with a message naming the problem when cargo is missing or the build fails.
 */
export function cargoBuild({ release }) {
  const args = ["build", "--lib", "--message-format=json-render-diagnostics"];
  if (release) args.push("--release");
  say(`cargo ${args.join(" ")} (${release ? "release: about 4-5 minutes on 2 cores" : "debug"})`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const cargo = spawn("cargo", args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    let compiled = 0;
    let library;
    let last = "starting";
    const heartbeat = setInterval(() => {
      const secs = Math.round((Date.now() - started) / 1000);
      say(`still building: ${compiled} crates compiled in ${secs}s (last: ${last})`);
    }, HEARTBEAT_MS);
    createInterface({ input: cargo.stdout }).on("line", (line) => {
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      if (message.reason !== "compiler-artifact") return;
      compiled += 1;
      last = message.target.name;
      if (message.target.kind.includes("cdylib")) {
        library = message.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
      }
    });
    cargo.on("error", (err) => {
      clearInterval(heartbeat);
      reject(
        err.code === "ENOENT"
          ? new Error(
              "cargo was not found on PATH. Install Rust (https://rustup.rs), then run `npm install` again, " +
                "or install the published package, which carries a prebuilt linux-x64 binary.",
            )
          : new Error(`cargo could not be started: ${err.message}`),
      );
    });
    cargo.on("close", (code, signal) => {
      clearInterval(heartbeat);
      if (code !== 0) {
        reject(new Error(`cargo build failed (${signal ?? `exit code ${code}`}); its errors are above`));
      } else if (!library) {
        reject(new Error("cargo build succeeded but reported no cdylib artifact"));
      } else {
        say(`built ${library} in ${Math.round((Date.now() - started) / 1000)}s`);
        resolve(library);
      }
    });
  });
}

/** Builds and installs the addon at the package root; returns its path. */
export async function build({ release }) {
  const library = await cargoBuild({ release });
  const target = binaryPath();
  // Copy then rename, so a process that loads the addon never sees a half-written file.
  copyFileSync(library, `${target}.tmp`);
  renameSync(`${target}.tmp`, target);
  say(`installed ${target}`);
  return target;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  build({ release: process.argv.includes("--release") }).catch((err) => {
    say(`error: ${err.message}`);
    process.exit(1);
  });
}
