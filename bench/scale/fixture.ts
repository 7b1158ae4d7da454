/**
 * The benchmark's world: one multi-tenant Entra app (one client id, one client secret) consented
 * in M customer tenants, as a SaaS holding a token per customer tenant has, declared once as a
 * ClusterAppRegistration whose Secret is in the operator's cluster resource namespace and offered
 * to every bench namespace by label. Request i asks for tenant i mod M, so each cache key (tenant)
 * is shared by N/M requests spread over the namespaces; namespace j holds requests
 * [j·N/NAMESPACES, (j+1)·N/NAMESPACES).
 */
import { request } from "node:https";
import type { TokenService } from "../../hack/token-service/server.js";
import { startTokenService } from "../../hack/token-service/server.js";

export const APP_ID = "5e1f7a2b-9c3d-4e5f-8a6b-7c8d9e0f1a2b";
export const CLIENT_SECRET = "bench~client-secret-value.0123456789";
export const RESOURCE = "https://graph.microsoft.com";
export const SCOPE = `${RESOURCE}/.default`;
export const CRED_SECRET = "app-cred";
export const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? "100");
/** The operator's --cluster-resource-namespace: where the registration's Secret lives. */
export const CLUSTER_RESOURCE_NAMESPACE = "bench-system";
export const REGISTRATION = "bench-app";
/** The label every bench namespace carries, and the registration's namespaceSelector. */
export const BENCH_LABEL = "apptoken.io/bench";

/** A GUID for tenant k: deterministic, distinct, readable. */
export function tenantId(k: number): string {
  const hex = k.toString(16).padStart(12, "0");
  return `${hex.slice(4, 12)}-0000-4000-8000-${hex}`;
}

export function namespaceOf(prefix: string, i: number, n: number): string {
  const per = Math.ceil(n / NAMESPACES);
  return `${prefix}-${String(Math.floor(i / per)).padStart(2, "0")}`;
}

export function namespaces(prefix: string): string[] {
  return Array.from({ length: NAMESPACES }, (_, j) => `${prefix}-${String(j).padStart(2, "0")}`);
}

export function requestName(i: number): string {
  return `req-${String(i).padStart(6, "0")}`;
}

export function requestSpec(tenant: number): Record<string, unknown> {
  return {
    appRef: { kind: "ClusterAppRegistration", name: REGISTRATION },
    tenantId: tenantId(tenant),
    scope: SCOPE,
  };
}

/** The one ClusterAppRegistration every request names. */
export function registrationManifest(service: TokenService): Record<string, unknown> {
  return {
    apiVersion: "apptoken.io/v1alpha1",
    kind: "ClusterAppRegistration",
    metadata: { name: REGISTRATION },
    spec: {
      clientId: APP_ID,
      authorityHost: service.url,
      credential: { clientSecret: { secretRef: { name: CRED_SECRET, key: "client-secret" } } },
      namespaceSelector: { matchLabels: { [BENCH_LABEL]: "true" } },
    },
  };
}

/** The local token service with `tenants` tenants, each with the app registered. */
export async function startBenchTokenService(
  tenants: number,
  lifetimeSeconds: number,
): Promise<TokenService> {
  const ids = Array.from({ length: tenants }, (_, k) => tenantId(k));
  return startTokenService({
    tenants: ids.map((id) => ({ id, domains: [] })),
    apps: ids.map((id) => ({ tenantId: id, clientId: APP_ID, secrets: [CLIENT_SECRET] })),
    resources: [RESOURCE],
    tokenLifetimeSeconds: lifetimeSeconds,
  });
}

/** One real token from the service (the floor writes tokens of the real size). */
export async function fetchOneToken(service: TokenService, tenant: number): Promise<string> {
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: APP_ID,
    client_secret: CLIENT_SECRET,
    scope: SCOPE,
  }).toString();
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      service.tokenEndpoint(tenantId(tenant)),
      { method: "POST", ca: service.caPem, headers: { "content-type": "application/x-www-form-urlencoded" } },
      (res) => {
        let out = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (out += c));
        res.on("end", () => resolve(out));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
  const token = (JSON.parse(text) as { access_token?: string }).access_token;
  if (!token) throw new Error(`token service answered without a token: ${text.slice(0, 300)}`);
  return token;
}
