/**
 * Resource use of another process, read from /proc the way `ps` does: resident memory now
 * (VmRSS), its high-water mark (VmHWM, kept by the kernel, so no peak is missed between samples)
 * and CPU seconds (utime + stime from /proc/<pid>/stat, in clock ticks).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface ProcSample {
  rssBytes: number;
  hwmBytes: number;
  cpuSeconds: number;
}

/** undefined when the process is gone. */
export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string): number => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    };
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return { rssBytes: kb("VmRSS"), hwmBytes: kb("VmHWM"), cpuSeconds: (utime + stime) / clockTicks() };
  } catch {
    return undefined;
  }
}

/** CPU seconds of a process and all its threads; 0 when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  return pid === undefined ? 0 : (sampleProc(pid)?.cpuSeconds ?? 0);
}

/** Polls a process every `intervalMs`, keeping the largest RSS seen (VmHWM is the exact peak). */
export class ProcWatcher {
  private timer: NodeJS.Timeout | undefined;
  peakRssBytes = 0;
  last: ProcSample | undefined;
  readonly samples: { t: number; rssBytes: number; cpuSeconds: number }[] = [];

  constructor(
    readonly pid: number,
    private readonly intervalMs = 500,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  sample(): ProcSample | undefined {
    const s = sampleProc(this.pid);
    if (s) {
      this.last = s;
      this.peakRssBytes = Math.max(this.peakRssBytes, s.rssBytes, s.hwmBytes);
      this.samples.push({ t: Date.now(), rssBytes: s.rssBytes, cpuSeconds: s.cpuSeconds });
    }
    return s;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function machineInfo(): { nproc: number; memoryGiB: number; cpuModel: string; node: string } {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  let nproc = 0;
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
  } catch {
    nproc = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  }
  return {
    nproc,
    memoryGiB: Math.round((memKb / 2 ** 20) * 10) / 10,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    node: process.version,
  };
}

/** 1-minute load average: other engineers' runs share this machine; the report notes it. */
export function loadAverage(): number {
  try {
    return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
  } catch {
    return Number.NaN;
  }
}
