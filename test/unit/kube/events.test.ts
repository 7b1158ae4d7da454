import { describe, expect, it } from "vitest";
import { WriteRefusedError } from "../../../src/kube/api-client.js";
import {
  EVENT_FIRST_RETRY_MS,
  EVENT_TRIES,
  EventRecorder,
  MAX_EVENTS_AWAITING_RETRY,
} from "../../../src/kube/events.js";
import { KubeApiError } from "../../../src/kube/transport.js";
import type { RawObject } from "../../../src/kube/types.js";
import { FakeTimers } from "./fake-timers.js";

const TARGET = {
  apiVersion: "apptoken.io/v1alpha1",
  kind: "AppTokenRequest",
  namespace: "payments",
  name: "graph",
  uid: "uid-graph",
};

function apiError(code: number): KubeApiError {
  return new KubeApiError("POST", "/api/v1/namespaces/payments/events", code, {
    reason: String(code),
    message: "test",
  });
}

/** An API whose createEvent answers from a script of failures, then succeeds. */
function harness(failures: unknown[]) {
  const timers = new FakeTimers();
  const posted: RawObject[] = [];
  const created: RawObject[] = [];
  const errors: unknown[] = [];
  const script = [...failures];
  const api = {
    createEvent: (_ns: string, event: RawObject): Promise<RawObject> => {
      posted.push(event);
      const failure = script.shift();
      if (failure !== undefined) return Promise.reject(failure);
      created.push(event);
      return Promise.resolve(event);
    },
  };
  const recorder = new EventRecorder({
    api,
    clock: timers.clock,
    timers,
    eventsPerSecond: 10_000,
    onError: (e) => errors.push(e),
  });
  return { timers, posted, created, errors, recorder };
}

describe("EventRecorder retries", () => {
  it("writes an Event the API server refused with 500 and 429 on a later try, seconds apart", async () => {
    const h = harness([apiError(500), apiError(429)]);
    h.recorder.record(TARGET, "Normal", "TokenIssued", "recovered");
    await h.timers.advanceAsync(0);
    expect(h.posted).toHaveLength(1);
    await h.timers.advanceAsync(EVENT_FIRST_RETRY_MS - 1);
    expect(h.posted).toHaveLength(1);
    await h.timers.advanceAsync(1);
    expect(h.posted).toHaveLength(2);
    await h.timers.advanceAsync(2 * EVENT_FIRST_RETRY_MS);
    expect(h.created).toHaveLength(1);
    expect(h.created[0]).toMatchObject({ reason: "TokenIssued", message: "recovered" });
    // The same Event (same name) each time, so a try whose answer was lost cannot write it twice.
    expect(new Set(h.posted.map((e) => e.metadata.name)).size).toBe(1);
    expect(h.errors).toEqual([]);
  });

  it("retries a timeout or a cut connection, and takes AlreadyExists on a retry as written", async () => {
    const h = harness([new Error("POST /api/v1/...: no answer within 30000 ms"), apiError(409)]);
    h.recorder.record(TARGET, "Warning", "RefreshThrottled", "429");
    await h.timers.advanceAsync(10 * EVENT_FIRST_RETRY_MS);
    expect(h.posted).toHaveLength(2);
    expect(h.errors).toEqual([]);
  });

  it("gives up after the last try and says so once", async () => {
    const h = harness(Array.from({ length: EVENT_TRIES + 3 }, () => apiError(503)));
    h.recorder.record(TARGET, "Normal", "Issued", "first token");
    await h.timers.advanceAsync(60 * EVENT_FIRST_RETRY_MS);
    expect(h.posted).toHaveLength(EVENT_TRIES);
    expect(h.errors).toHaveLength(1);
    expect(h.timers.pending).toBe(0);
  });

  it("never retries what the API server refused for the Event itself, or a lost lease", async () => {
    for (const refusal of [
      apiError(403),
      apiError(404),
      apiError(422),
      new WriteRefusedError("create", "events"),
    ]) {
      const h = harness([refusal]);
      h.recorder.record(TARGET, "Normal", "Issued", "first token");
      await h.timers.advanceAsync(60 * EVENT_FIRST_RETRY_MS);
      expect(h.posted).toHaveLength(1);
      expect(h.errors).toEqual([refusal]);
    }
  });

  it("holds at most a bounded number of Events awaiting a retry", async () => {
    const n = MAX_EVENTS_AWAITING_RETRY + 5;
    const h = harness(Array.from({ length: n }, () => apiError(503)));
    for (let i = 0; i < n; i++)
      h.recorder.record({ ...TARGET, name: `r-${i}`, uid: `uid-${i}` }, "Normal", "Issued", "first token");
    await h.timers.advanceAsync(0);
    expect(h.timers.pending).toBe(MAX_EVENTS_AWAITING_RETRY);
    expect(h.errors).toHaveLength(5);
    // The API server is back: every Event that waited is written.
    await h.timers.advanceAsync(EVENT_FIRST_RETRY_MS);
    expect(h.created).toHaveLength(MAX_EVENTS_AWAITING_RETRY);
  });
});

describe("EventRecorder de-duplication", () => {
  it("writes one Event per `sameAs` fact, whatever the message says the second time", async () => {
    const h = harness([]);
    h.recorder.record(TARGET, "Normal", "Issued", "token to s (source IdentityProvider)", "token 1");
    h.recorder.record(TARGET, "Normal", "Issued", "token to s (source Cache)", "token 1");
    h.recorder.record(TARGET, "Normal", "Issued", "token to s (source Cache)", "token 2");
    await h.timers.advanceAsync(0);
    expect(h.created.map((e) => e.message)).toEqual([
      "token to s (source IdentityProvider)",
      "token to s (source Cache)",
    ]);
  });
});
