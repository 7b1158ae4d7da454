/**
 * The status writer keeps its own copy of a status it wrote until the request informer holds that
 * write, and finds that out by looking (no event handler tells it).
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Outcome } from "../../../src/controller/outcomes.js";
import {
  StatusWriter,
  UNOBSERVED_STATUS_TTL_MS,
  knownStatus,
  type StatusMemo,
} from "../../../src/controller/status-writer.js";
import type { RawObject } from "../../../src/kube/types.js";
import { Metrics } from "../../../src/observability/metrics.js";
import { FakeClock } from "../../support/fake-clock.js";

function request(name: string, rv: string, status?: object): RawObject {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "AppTokenRequest",
    metadata: { name, namespace: "ns", uid: `uid-${name}`, generation: 1, resourceVersion: rv },
    ...(status ? { status } : {}),
  } as RawObject;
}

const refused = (reason: string): Outcome => ({ ready: { status: "False", reason, message: reason } });

function harness() {
  const clock = new FakeClock();
  const informer = new Map<string, RawObject>();
  const patches: Record<string, unknown>[] = [];
  let rv = 100;
  const writer = new StatusWriter({
    clock,
    requests: { getByKey: (k) => informer.get(k) },
    api: {
      patchRequestStatus: (namespace, name, _uid, patch) => {
        patches.push(patch);
        return Promise.resolve({ metadata: { namespace, name, resourceVersion: String(++rv) } });
      },
    },
    events: { record: () => undefined },
    metrics: new Metrics(),
    log: pino({ level: "silent" }),
  });
  const memo = (): StatusMemo => ({ hits: 0, misses: 0, lastStatus: undefined, writtenRv: undefined });
  /** Writes `reason` for `name`; the informer still holds version "1" (the watch is behind). */
  const write = async (name: string, m: StatusMemo, reason: string): Promise<void> => {
    const key = `ns/${name}`;
    if (!informer.has(key)) informer.set(key, request(name, "1"));
    await writer.write(informer.get(key)!, m, undefined, refused(reason), () => informer.get(key));
  };
  /** The watch delivers the last write: the version it produced, with the status it set. */
  const deliver = (name: string, m: StatusMemo): void => {
    informer.set(`ns/${name}`, request(name, m.writtenRv!, m.lastStatus));
  };
  return { clock, informer, patches, writer, memo, write, deliver };
}

describe("StatusWriter: its copy of a status write, until the informer has it", () => {
  it("drops the copy once the informer holds the version the write produced, read or swept", async () => {
    const h = harness();
    const a = h.memo();
    await h.write("a", a, "First");
    expect(a.lastStatus).toBeDefined();
    // Read before the watch delivered: our copy, not the informer's older one.
    expect(knownStatus(a, h.informer.get("ns/a")!)?.conditions?.[0]?.reason).toBe("First");
    h.deliver("a", a);
    // Another request's write looks at the oldest awaited writes.
    await h.write("b", h.memo(), "Other");
    expect(a.lastStatus).toBeUndefined();
    expect(knownStatus(a, h.informer.get("ns/a")!)?.conditions?.[0]?.reason).toBe("First");
  });

  it("keeps the copy while the informer holds a version from between our read and our write", async () => {
    const h = harness();
    const a = h.memo();
    await h.write("a", a, "Mine");
    // Someone's spec update landed before our patch: a new version, with the status before ours.
    h.informer.set("ns/a", request("a", "50"));
    await h.write("b", h.memo(), "Other");
    expect(a.lastStatus?.conditions?.[0]?.reason).toBe("Mine");
    // A later version that shows our status: caught up.
    h.informer.set("ns/a", request("a", "60", a.lastStatus));
    await h.write("c", h.memo(), "Other");
    expect(a.lastStatus).toBeUndefined();
  });

  it("lets the informer win after the TTL, and forgets a deleted request's copy", async () => {
    const h = harness();
    const stalled = h.memo();
    const deleted = h.memo();
    await h.write("stalled", stalled, "Mine");
    await h.write("deleted", deleted, "Mine");
    h.informer.delete("ns/deleted");
    h.clock.advance(UNOBSERVED_STATUS_TTL_MS + 1);
    await h.write("x", h.memo(), "Other");
    expect(stalled.lastStatus).toBeUndefined();
    expect(deleted.lastStatus).toBeUndefined();
  });

  it("holds copies only for the writes the watch is behind on, however many writes there are", async () => {
    const h = harness();
    const memos: StatusMemo[] = [];
    for (let i = 0; i < 500; i++) {
      const m = h.memo();
      memos.push(m);
      await h.write(`r-${i}`, m, "Issued");
      h.deliver(`r-${i}`, m);
    }
    expect(memos.filter((m) => m.lastStatus !== undefined).length).toBeLessThanOrEqual(2);
  });
});
