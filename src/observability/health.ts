/**
 * /healthz (the process is alive and its event loop turns) and /readyz (caches synced and, if
 * leader election is on, either leading or standing by healthily).
 */
import { createServer, type Server } from "node:http";
import { listen } from "./listen.js";

export type Check = () => boolean | string;

export class HealthServer {
  private readonly readyChecks = new Map<string, Check>();
  private readonly liveChecks = new Map<string, Check>();
  private server: Server | undefined;

  addReadyCheck(name: string, check: Check): void {
    this.readyChecks.set(name, check);
  }
  addLiveCheck(name: string, check: Check): void {
    this.liveChecks.set(name, check);
  }

  async start(bindAddress: string): Promise<string | undefined> {
    if (bindAddress === "0") return undefined;
    this.server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const checks =
        path === "/healthz" || path === "/livez"
          ? this.liveChecks
          : path === "/readyz"
            ? this.readyChecks
            : undefined;
      if (!checks) {
        res.writeHead(404).end("not found\n");
        return;
      }
      const failures: string[] = [];
      for (const [name, check] of checks) {
        let r: boolean | string;
        try {
          r = check();
        } catch (e) {
          r = String(e);
        }
        if (r !== true) failures.push(`${name}: ${r === false ? "failed" : r}`);
      }
      res.writeHead(failures.length ? 503 : 200, { "content-type": "text/plain" });
      res.end(failures.length ? failures.join("\n") + "\n" : "ok\n");
    });
    return listen(this.server, bindAddress);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
