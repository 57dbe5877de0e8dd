// A TCP "API server" on 127.0.0.1 that accepts connections and never answers, with a kubeconfig
// pointing at it: a run using it hangs on its first cluster call (for cancellation tests).
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

/**
 * Starts the server and writes `dir/kubeconfig` for it (namespace `namespace`).
 * `firstConnection` resolves with "connected" once a client connected; `close()` stops it.
 */
export async function silentApiServer(dir, namespace) {
  const sockets = [];
  let connected;
  const firstConnection = new Promise((resolve) => {
    connected = resolve;
  });
  const server = createServer((socket) => {
    sockets.push(socket);
    connected("connected");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: silent",
      "  cluster:",
      `    server: http://127.0.0.1:${server.address().port}`,
      "users:",
      "- name: silent",
      "  user:",
      "    token: silent-test",
      "contexts:",
      "- name: silent",
      `  context: {cluster: silent, user: silent, namespace: ${namespace}}`,
      "current-context: silent",
      "",
    ].join("\n"),
  );
  return {
    kubeconfig,
    firstConnection,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
