import type { Server } from "node:http";

/** Listens on controller-runtime style addresses (":8080", "127.0.0.1:0"); resolves "host:port". */
export function listen(server: Server, bindAddress: string): Promise<string> {
  const idx = bindAddress.lastIndexOf(":");
  const host = bindAddress.slice(0, idx).replace(/^\[|\]$/g, "") || undefined;
  const port = Number(bindAddress.slice(idx + 1));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? `${addr.address}:${addr.port}` : bindAddress);
    });
  });
}
