/**
 * Leader election against a real coordination.k8s.io/v1 Lease, with short timings (lease 3 s,
 * renew deadline 2 s, retry 0.5 s) and the system clock. Electors run in this process, each on
 * its own tapped wire to the real server (test/support/tapped-transport.ts), which the test can
 * make refuse, black-hole or delay requests. What the Lease goes through is observed by a watch on
 * the server, independent of the electors. Each test has its own Lease, so the tests run
 * concurrently.
 */
import { CoordinationV1Api, Watch } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, it } from "vitest";
import { LeaderElector, type LeaderElectionOutcome } from "../../src/kube/leader-election.js";
import { createKubeTransport } from "../../src/kube/transport.js";
import { createTestNamespace, deleteTestNamespace, eventually, testKubeConfig } from "../support/kube.js";
import { TappedTransport, type TappedRequest } from "../support/tapped-transport.js";

const kc = testKubeConfig();
const coordination = kc.makeApiClient(CoordinationV1Api);
let ns: string;

beforeAll(async () => {
  ns = await createTestNamespace(kc, "kube-lease");
});
afterAll(async () => {
  await deleteTestNamespace(kc, ns);
});

const TIMINGS = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };
/** client-go's jitter: an elector waits retryPeriod·(1 + up to 1.2) between attempts. */
const MAX_RETRY_MS = 2.2 * TIMINGS.retryPeriodMs;
/** For timer and scheduling delays on a busy 2-core machine. */
const SLACK_MS = 250;

interface Replica {
  id: string;
  transport: TappedTransport;
  elector: LeaderElector;
  stop: AbortController;
  result: Promise<LeaderElectionOutcome>;
  /** Date.now() when onStartedLeading ran / its signal aborted / onStoppedLeading ran. */
  startedAt?: number;
  abortedAt?: number;
  stoppedAt?: number;
  /** Lets onStartedLeading's promise settle: the "controller" has drained its writes. */
  drained(): void;
}

/**
 * A replica whose "controller" runs until its signal aborts, then drains at once, or, with
 * drain "when-told", only when the test calls `drained()`.
 */
function replica(id: string, lease: string, drain: "at-once" | "when-told" = "at-once"): Replica {
  const r = {
    id,
    transport: new TappedTransport(createKubeTransport(kc)),
    stop: new AbortController(),
  } as Replica;
  let drained: () => void = () => undefined;
  r.drained = () => drained();
  r.elector = new LeaderElector({
    ...TIMINGS,
    transport: r.transport,
    namespace: ns,
    name: lease,
    identity: id,
    onStartedLeading: (signal) => {
      r.startedAt = Date.now();
      return new Promise<void>((resolve) => {
        drained = resolve;
        signal.addEventListener("abort", () => {
          r.abortedAt = Date.now();
          if (drain === "at-once") resolve();
        });
      });
    },
    onStoppedLeading: () => {
      r.stoppedAt = Date.now();
    },
  });
  r.result = r.elector.run(r.stop.signal);
  return r;
}

/** Writes of the lease (create, renew, take over, release) that the server accepted. */
const acceptedWrites = (r: Replica): TappedRequest[] =>
  r.transport.requests.filter((q) => (q.verb === "update" || q.verb === "create") && q.answer !== undefined);

interface LeaseState {
  holder: string;
  leaseDurationSeconds: number | undefined;
  renewTime: string | undefined;
  transitions: number | undefined;
  /** Date.now() when the watch delivered it. */
  at: number;
}

/** Every version of the Lease, as a watch on the real server delivers them (client-node's own Watch). */
async function leaseHistory(lease: string, onTestFinished: (fn: () => void) => void): Promise<LeaseState[]> {
  const states: LeaseState[] = [];
  const watching = await new Watch(kc).watch(
    `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
    { fieldSelector: `metadata.name=${lease}` },
    (phase, obj: { spec?: Record<string, unknown> }) => {
      if (phase !== "ADDED" && phase !== "MODIFIED") return;
      const spec = obj.spec ?? {};
      states.push({
        holder: (spec.holderIdentity as string | undefined) ?? "",
        leaseDurationSeconds: spec.leaseDurationSeconds as number | undefined,
        renewTime: spec.renewTime as string | undefined,
        transitions: spec.leaseTransitions as number | undefined,
        at: Date.now(),
      });
    },
    () => undefined,
  );
  onTestFinished(() => watching.abort());
  return states;
}

async function readLease(
  lease: string,
): Promise<{ holder: string | undefined; transitions: number | undefined }> {
  const l = await coordination.readNamespacedLease({ name: lease, namespace: ns });
  return { holder: l.spec?.holderIdentity ?? undefined, transitions: l.spec?.leaseTransitions ?? undefined };
}

function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  return eventually(async () => probe(), what, timeoutMs, 20);
}

/** Starts a leader, then a standby that has seen the leader's lease. */
async function leaderAndStandby(lease: string, leaderDrain: "at-once" | "when-told" = "at-once") {
  const leader = replica("replica-a", lease, leaderDrain);
  await until("replica-a to lead", () => leader.startedAt);
  const standby = replica("replica-b", lease);
  await until("replica-b to see the lease held", () =>
    standby.transport.calls("get").some((q) => q.answer !== undefined) ? true : undefined,
  );
  return { leader, standby };
}

describe.concurrent("LeaderElector on a real Lease", () => {
  it("lets exactly one of two replicas lead, and the leader keeps the lease by renewing it", async ({
    expect,
    onTestFinished,
  }) => {
    const lease = "one-leader";
    const history = await leaseHistory(lease, onTestFinished);
    // Both start at once: both find no lease and race to create it; the server lets one win.
    const a = replica("replica-a", lease);
    const b = replica("replica-b", lease);
    onTestFinished(async () => {
      a.stop.abort();
      b.stop.abort();
      await Promise.all([a.result, b.result]);
    });
    const [leader, standby] = await until("a leader", () =>
      a.startedAt ? [a, b] : b.startedAt ? [b, a] : undefined,
    );

    // Long after a standby could have taken over an unrenewed lease...
    const takeoverPossibleAt = leader.startedAt! + TIMINGS.leaseDurationMs + MAX_RETRY_MS;
    await until("a renewal after the lease would have expired", () =>
      history.some((s) => s.at > takeoverPossibleAt) ? true : undefined,
    );
    // ...the leader still leads and the standby never did.
    expect(leader.elector.isLeader()).toBe(true);
    expect(standby.startedAt).toBeUndefined();
    expect(standby.elector.isLeader()).toBe(false);
    expect(acceptedWrites(standby)).toEqual([]);
    expect(new Set(history.map((s) => s.holder))).toEqual(new Set([leader.id]));
    expect((await readLease(lease)).holder).toBe(leader.id);
    // Renewed every retry period: each one a new renewTime on the server.
    const renewals = new Set(history.map((s) => s.renewTime)).size;
    const leadingFor = Date.now() - leader.startedAt!;
    expect(renewals).toBeGreaterThanOrEqual(Math.floor(leadingFor / (2 * TIMINGS.retryPeriodMs)));
    expect(acceptedWrites(leader).length).toBeGreaterThanOrEqual(renewals);
  });

  for (const fault of ["refused", "black-hole", "slow"] as const) {
    const what = {
      refused: "are refused (network cut)",
      "black-hole": "hang and are never answered",
      slow: "reach the server too late (latency beyond the renew deadline)",
    }[fault];
    it(`stops a leader whose renewals ${what} before the standby takes over, and the standby takes over within the lease duration`, async ({
      expect,
      onTestFinished,
    }) => {
      const lease = `failover-${fault}`;
      const { leader, standby } = await leaderAndStandby(lease);
      onTestFinished(async () => {
        standby.stop.abort();
        await standby.result;
      });
      await until("the leader's first renewal", () =>
        acceptedWrites(leader).length >= 2 ? true : undefined,
      );

      const cutAt = Date.now();
      if (fault === "slow") leader.transport.latencyMs = 2.5 * TIMINGS.renewDeadlineMs;
      else leader.transport.network = fault;
      await until("the leader to stop", () => leader.stoppedAt, 10_000);
      expect(await leader.result).toBe("lost");
      await until("the standby to take over", () => standby.startedAt, 10_000);

      const lastRenewal = acceptedWrites(leader).at(-1)!;
      expect(lastRenewal.at).toBeLessThanOrEqual(cutAt);
      // The leader stopped at its renew deadline, counted from the start of its last renewal...
      expect(leader.abortedAt! - lastRenewal.at).toBeLessThanOrEqual(TIMINGS.renewDeadlineMs + SLACK_MS);
      expect(leader.abortedAt! - cutAt).toBeLessThanOrEqual(TIMINGS.renewDeadlineMs + SLACK_MS);
      expect(leader.stoppedAt! - leader.abortedAt!).toBeLessThan(100);
      expect(leader.elector.isLeader()).toBe(false);
      // ...strictly before the standby started, which waited out a full lease duration after that
      // renewal, and took over within one more lease duration plus two jittered retries.
      expect(leader.abortedAt!).toBeLessThan(standby.startedAt!);
      expect(standby.startedAt! - lastRenewal.at).toBeGreaterThanOrEqual(TIMINGS.leaseDurationMs);
      expect(standby.startedAt! - cutAt).toBeLessThanOrEqual(
        TIMINGS.leaseDurationMs + 2 * MAX_RETRY_MS + SLACK_MS,
      );
      expect(await readLease(lease)).toEqual({ holder: standby.id, transitions: 1 });
    });
  }

  it("on shutdown, keeps renewing while the controller drains, then releases the lease so the standby takes over at once", async ({
    expect,
    onTestFinished,
  }) => {
    const lease = "release";
    const history = await leaseHistory(lease, onTestFinished);
    const { leader: a, standby: b } = await leaderAndStandby(lease, "when-told");
    onTestFinished(async () => {
      b.stop.abort();
      await b.result;
    });

    const shutdownAt = Date.now();
    a.stop.abort();
    expect(a.abortedAt! - shutdownAt).toBeLessThan(100);
    // Draining for longer than a lease duration: the lease is still renewed, and held.
    await until("a renewal a lease duration into the drain", () =>
      history.some((s) => s.at > shutdownAt + TIMINGS.leaseDurationMs) ? true : undefined,
    );
    expect(b.startedAt).toBeUndefined();
    expect(history.every((s) => s.holder === a.id)).toBe(true);

    const drainedAt = Date.now();
    a.drained();
    expect(await a.result).toBe("released");
    expect(a.stoppedAt).toBeGreaterThanOrEqual(drainedAt);
    await until("b to take over", () => b.startedAt);
    expect(b.startedAt! - drainedAt).toBeLessThanOrEqual(MAX_RETRY_MS + SLACK_MS);
    // b knows it leads once its write is accepted; the history's watch sees that write a moment later.
    await until("the Lease's watch to show b holding it", () =>
      history.some((s) => s.holder === b.id) ? true : undefined,
    );

    // On the server: held by a, released (no holder, 1 s), then held by b.
    const holders = history.map((s) => s.holder).filter((h, i, all) => i === 0 || all[i - 1] !== h);
    expect(holders).toEqual([a.id, "", b.id]);
    expect(history.find((s) => s.holder === "")).toMatchObject({ leaseDurationSeconds: 1 });
    expect(await readLease(lease)).toEqual({ holder: b.id, transitions: 1 });
  });
});
