/**
 * The registration reconcile of a registration that is gone: it lets go of what this process held
 * for it, queued like any other change (the informer's delete handler only queues the key).
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import { RegistrationReconciler } from "../../../src/controller/registrations/registration-reconcile.js";
import type { RawObject } from "../../../src/kube/types.js";

function reconciler(registrations: Map<string, RawObject>, released: string[]): RegistrationReconciler {
  return new RegistrationReconciler({
    clock: { now: () => Date.parse("2026-03-01T10:00:00Z") },
    directory: {
      get: (ref) => registrations.get(ref),
      parse: () => {
        throw new Error("a registration that is gone is never parsed");
      },
      credentialNamespace: () => "apptoken-system",
    },
    requests: { indexKeys: () => [] },
    credentials: { resolve: () => Promise.reject(new Error("a registration that is gone loads nothing")) },
    api: {
      patchRegistrationStatus: () => Promise.reject(new Error("a registration that is gone is not written")),
    },
    events: { record: () => undefined },
    authority: { allowInsecureLoopback: false, allowedHosts: new Set() },
    log: pino({ level: "silent" }),
    releaseUnusedCredentials: () => released.push("released"),
  });
}

describe("RegistrationReconciler, for a registration that is gone", () => {
  it("lets go of the credentials no registration names any more, and writes nothing", async () => {
    const released: string[] = [];
    const r = reconciler(new Map(), released);
    await expect(
      r.reconcile("ClusterAppRegistration:saas-app", new AbortController().signal),
    ).resolves.toBeUndefined();
    expect(released).toEqual(["released"]);
  });
});
