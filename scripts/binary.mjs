// Where the native addon lives inside the package. Shared by index.js and the build/install
// scripts so the three agree on one name.
import { fileURLToPath } from "node:url";

/** The addon's file name for this platform, e.g. `paperclip-claude-k8s.linux-x64-gnu.node`. */
export function binaryName(platform = process.platform, arch = process.arch) {
  const abi = platform === "linux" ? "-gnu" : "";
  return `paperclip-claude-k8s.${platform}-${arch}${abi}.node`;
}

/** Absolute path of the addon for this platform, at the package root. */
export function binaryPath() {
  return fileURLToPath(new URL(`../${binaryName()}`, import.meta.url));
}
