// npm `install` hook: keeps the prebuilt addon when it loads on this machine, else builds it
// from source with cargo (a git checkout, or a platform the package carries no binary for).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { binaryPath } from "./binary.mjs";
import { build } from "./build.mjs";

const say = (line) => process.stderr.write(`[paperclip-claude-k8s] ${line}\n`);
const require = createRequire(import.meta.url);

/** Why the addon at `path` cannot be used here, or null when it loads. */
function loadProblem(path) {
  if (!existsSync(path)) return `no prebuilt addon at ${path}`;
  try {
    require(path);
    return null;
  } catch (err) {
    return `the prebuilt addon ${path} does not load here: ${err.message}`;
  }
}

const path = binaryPath();
const problem = loadProblem(path);
if (problem === null) {
  say(`using the prebuilt addon ${path}`);
} else {
  say(`${problem}; building it from source`);
  try {
    await build({ release: true });
  } catch (err) {
    say(`error: ${err.message}`);
    process.exit(1);
  }
  const after = loadProblem(path);
  if (after !== null) {
    say(`error: ${after}`);
    process.exit(1);
  }
}
