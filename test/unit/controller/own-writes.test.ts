import { describe, expect, it } from "vitest";
import { OwnWrites, UNOBSERVED_WRITE_TTL_MS } from "../../../src/controller/own-writes.js";
import { FakeClock } from "../../support/fake-clock.js";

const at = (rv: string) => ({ metadata: { resourceVersion: rv } });

describe("our own Secret writes, until the informer delivers them", () => {
  it("answers with our write while the informer still holds the version it replaced", () => {
    const w = new OwnWrites(new FakeClock(), () => undefined);
    const informer = at("10");
    w.wrote("ns/a", at("11"), "10", w.current("ns/a", informer));
    // A fan-out reconcile right after: it must not PUT over resourceVersion 10.
    expect(w.current("ns/a", informer)).toEqual(at("11"));
    expect(w.current("ns/b", at("7"))).toEqual(at("7"));
  });

  it("does not remember a create: an informer showing nothing may have seen it deleted since", () => {
    const w = new OwnWrites(new FakeClock(), () => undefined);
    w.wrote("ns/a", at("5"), undefined, w.current("ns/a", undefined));
    // Created, delivered, then deleted (a garbage-collected owner, a person): the informer holds
    // nothing again, and the next reconcile must see the Secret missing, not our copy.
    expect(w.current("ns/a", undefined)).toBeUndefined();
    expect(w.size).toBe(0);
  });

  it("trusts the informer once it delivers anything for the key", () => {
    const w = new OwnWrites(new FakeClock(), () => undefined);
    w.wrote("ns/a", at("11"), "10", at("10"));
    // The informer delivers our write: its copy is no longer the version the write replaced.
    expect(w.current("ns/a", at("11"))).toEqual(at("11"));
    // A later write by someone else, seen by the informer, is never hidden by ours.
    expect(w.current("ns/a", at("12"))).toEqual(at("12"));
    expect(w.size).toBe(0);
  });

  it("does not remember a write when the informer already moved past the version it replaced", () => {
    const w = new OwnWrites(new FakeClock(), () => undefined);
    // The watch delivered our write (or a later one) before the response came back.
    w.wrote("ns/a", at("11"), "10", at("11"));
    // A PUT based on a fresh GET (after a 409) while the informer lags even further behind.
    w.wrote("ns/b", at("21"), "20", at("19"));
    // A create racing with someone else's: the informer holds theirs.
    w.wrote("ns/c", at("31"), undefined, at("30"));
    expect(w.size).toBe(0);
    expect(w.current("ns/b", at("19"))).toEqual(at("19"));
  });

  it("lets the informer win again after the TTL, so a stalled watch cannot pin a write", () => {
    const clock = new FakeClock();
    const w = new OwnWrites(clock, () => undefined);
    w.wrote("ns/a", at("11"), "10", at("10"));
    clock.advance(UNOBSERVED_WRITE_TTL_MS);
    expect(w.current("ns/a", at("10"))).toEqual(at("11"));
    clock.advance(1);
    expect(w.current("ns/a", at("10"))).toEqual(at("10"));
    expect(w.size).toBe(0);
  });

  it("forgets writes the informer caught up with as later writes come, without being told", () => {
    const informer = new Map<string, string>();
    const w = new OwnWrites(new FakeClock(), (k) => informer.get(k));
    for (let i = 0; i < 1_000; i++) {
      const key = `ns/r-${i}`;
      informer.set(key, "10");
      w.wrote(key, at(`11-${i}`), "10", at("10"));
      // The watch delivers each write a little later (here: before the next one).
      informer.set(key, `11-${i}`);
    }
    expect(w.size).toBeLessThanOrEqual(2);
    // One the watch has not delivered stays, and is still answered.
    informer.set("ns/late", "10");
    w.wrote("ns/late", at("11"), "10", at("10"));
    for (let i = 0; i < 10; i++) w.wrote(`ns/s-${i}`, at("2"), "1", at("1"));
    expect(w.current("ns/late", at("10"))).toEqual(at("11"));
  });
});
