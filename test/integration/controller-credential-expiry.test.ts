/**
 * Credential expiry, end to end on the real control plane with the local token service: a
 * certificate 10 days from its notAfter shows CredentialExpiringSoon=True, raises exactly one
 * Warning Event however often the registration is reconciled again, and exports its notAfter as
 * apptoken_credential_expiration_timestamp_seconds; an expired certificate makes the registration
 * and its request CredentialExpired, and nothing is sent to the token service.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClientCertificate } from "../../hack/token-service/pki.js";
import { eventually } from "../support/kube.js";
import { CERT_APP, Scenario } from "../support/scenario.js";

const DAY = 86_400_000;

describe("credential expiry, on the real control plane", () => {
  const s = new Scenario({ prefix: "ctl-expiry", operator: false });

  beforeAll(async () => {
    await s.start();
    await s.startOperator();
  }, 180_000);

  afterAll(async () => {
    await s.stop();
  });

  /** A certificate for CERT_APP valid until `notAfter`, in Secret `secret`, trusted by the token service. */
  async function certificateSecret(secret: string, notBefore: Date, notAfter: Date): Promise<Date> {
    const cert = await createClientCertificate({ commonName: secret, notBefore, notAfter });
    s.service.setConfig({
      ...s.service.config,
      apps: s.service.config.apps.map((a) =>
        a.clientId === CERT_APP ? { ...a, certificates: [...(a.certificates ?? []), cert.certPem] } : a,
      ),
    });
    await s.putSecret(secret, { "tls.crt": cert.certPem, "tls.key": cert.keyPem }, "kubernetes.io/tls");
    // The certificate says it to the second: that is what the registration reports.
    return new Date(Math.floor(notAfter.getTime() / 1000) * 1000);
  }

  async function warningEvents(name: string): Promise<string[]> {
    const list = await s.core.listNamespacedEvent({
      namespace: s.ns,
      fieldSelector: `involvedObject.kind=AppRegistration,involvedObject.name=${name}`,
    });
    return list.items.filter((e) => e.reason === "CredentialExpiringSoon").map((e) => `${e.count ?? 1}`);
  }

  it("warns once about a certificate that expires in 10 days, and exports its notAfter", async () => {
    const notAfter = await certificateSecret(
      "soon-cert",
      new Date(Date.now() - DAY),
      new Date(Date.now() + 10 * DAY),
    );
    const spec = await s.specWithRegistration("soon-app", {
      ...s.registrationSpec("certificate"),
      credential: { certificate: { secretRef: { name: "soon-cert" } } },
    });
    await s.createRequest("soon", spec);
    await s.waitFor("soon", "True");
    const reg = await s.waitForRegistration("soon-app", "True", "CredentialLoaded");
    expect(reg.status?.credential?.expiresAt).toBe(notAfter.toISOString());
    const expiring = reg.status?.conditions?.find((c) => c.type === "CredentialExpiringSoon");
    expect(expiring).toMatchObject({ status: "True", reason: "CredentialExpiringSoon" });
    expect(expiring?.message).toContain(notAfter.toISOString());

    // Reconciled again and again (a label change, a spec change, its Secret rewritten): one Event.
    for (let i = 0; i < 3; i++) {
      await s.patchRegistration("soon-app", { metadata: { labels: { touched: `${i}` } } });
      await s.patchRegistration("soon-app", { spec: { allowedTenants: ["*", `t${i}.example`] } });
    }
    await eventually(
      async () =>
        (await s.getRegistration("soon-app")).status?.observedGeneration ===
          (await s.getRegistration("soon-app")).metadata.generation || undefined,
      "the last spec change reconciled",
    );
    expect(await warningEvents("soon-app")).toEqual(["1"]);

    const metric = await s.operator!.metric("apptoken_credential_expiration_timestamp_seconds", {
      kind: "AppRegistration",
      namespace: s.ns,
      name: "soon-app",
      credential: "Certificate",
    });
    expect(metric).toBe(notAfter.getTime() / 1000);
  });

  it("refuses an expired certificate with CredentialExpired on the registration and its request, calling nothing", async () => {
    const notAfter = await certificateSecret(
      "old-cert",
      new Date(Date.now() - 60 * DAY),
      new Date(Date.now() - DAY),
    );
    const callsBefore = s.service.requests({ clientId: CERT_APP });
    const spec = await s.specWithRegistration("old-app", {
      ...s.registrationSpec("certificate"),
      credential: { certificate: { secretRef: { name: "old-cert" } } },
    });
    await s.createRequest("old", spec);
    const req = await s.waitFor("old", "False", "CredentialExpired");
    expect(s.ready(req.status)?.message).toMatch(/^AppRegistration old-app: .*expired at/);
    const reg = await s.waitForRegistration("old-app", "False", "CredentialExpired");
    // What is known of it is still shown, and exported for the "expired" alert.
    expect(reg.status?.credential?.expiresAt).toBe(notAfter.toISOString());
    expect(reg.status?.conditions?.find((c) => c.type === "CredentialExpiringSoon")).toMatchObject({
      status: "False",
      reason: "CredentialExpired",
    });
    expect(
      await s.operator!.metric("apptoken_credential_expiration_timestamp_seconds", { name: "old-app" }),
    ).toBe(notAfter.getTime() / 1000);
    expect(s.service.requests({ clientId: CERT_APP })).toBe(callsBefore);
    expect(await s.secret("old")).toBeUndefined();
  });
});
