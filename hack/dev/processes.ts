/**
 * Child processes for `make dev`: each in its own process group (so a terminal's Ctrl-C reaches
 * only hack/dev/dev.ts, which then stops them in order), stopped with SIGTERM then SIGKILL, and
 * watched by a tiny shell that kills them if dev.ts itself is killed (-9) and cannot clean up.
 */
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";

export interface Child {
  name: string;
  proc: ChildProcess;
  /** Resolves with the exit code (or 128 + signal number) once the process has exited. */
  exited: Promise<number>;
  /** SIGTERM to the whole group, SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<number>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function startChild(
  name: string,
  command: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; stdio: StdioOptions },
): Child {
  const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: opts.stdio, detached: true });
  const exited = new Promise<number>((resolveExit) => {
    proc.once("exit", (code, signal) => resolveExit(code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0)));
    proc.once("error", () => resolveExit(127));
  });
  const watchdog = proc.pid === undefined ? undefined : startWatchdog(proc.pid);
  const kill = (signal: NodeJS.Signals) => {
    if (proc.pid === undefined) return;
    try {
      process.kill(-proc.pid, signal);
    } catch {
      /* already gone */
    }
  };
  let stopping: Promise<number> | undefined;
  return {
    name,
    proc,
    exited,
    stop(graceMs = 10_000) {
      stopping ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) {
          kill("SIGTERM");
          const timer = setTimeout(() => kill("SIGKILL"), graceMs);
          await exited;
          clearTimeout(timer);
        }
        // Anything the child left in its group (a shell's own children).
        kill("SIGKILL");
        if (watchdog?.pid !== undefined) {
          try {
            process.kill(watchdog.pid, "SIGKILL");
          } catch {
            /* already gone */
          }
        }
        return exited;
      })();
      return stopping;
    },
  };
}

/** Kills process group `pgid` once this process is gone. */
function startWatchdog(pgid: number): ChildProcess {
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -TERM -${pgid} 2>/dev/null; sleep 3; kill -KILL -${pgid} 2>/dev/null; true`;
  const child = spawn("bash", ["-c", script], { stdio: "ignore", detached: true });
  child.unref();
  return child;
}

/** The last `max` lines written to a stream, for "the operator's last log lines". */
export class LineTail {
  private lines: string[] = [];
  private partial = "";
  constructor(private readonly max = 200) {}
  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    this.lines.push(...parts);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  last(n: number): string[] {
    const all = this.partial === "" ? this.lines : [...this.lines, this.partial];
    return all.slice(-n);
  }
}
