/**
 * What `make dev` shows: one tenant and one app registration in the local token service, with a
 * client secret and a registered certificate (both fresh on every run), and the objects that use
 * them in namespace `demo`: the two credential Secrets and two AppTokenRequests.
 */
import { randomBytes } from "node:crypto";
import { createClientCertificate } from "../token-service/pki.js";
import type { TokenServiceConfigInput } from "../token-service/config.js";
import type { Manifest } from "./deploy-manifests.js";

export const DEMO_NAMESPACE = "demo";
export const DEMO_TENANT_ID = "6f1c2b7a-1d4e-4c8b-9a3f-0e5d7c2b1a90";
export const DEMO_TENANT_DOMAIN = "contoso.onmicrosoft.com";
export const DEMO_CLIENT_ID = "8d2e4f6a-3b5c-4d7e-9f1a-2b3c4d5e6f70";
export const DEMO_RESOURCE = "https://graph.microsoft.com";
/** The AppTokenRequests, each named like the Secret it fills. */
export const DEMO_REQUESTS = ["graph-client-secret", "graph-certificate"] as const;

export interface DemoCredentials {
  clientSecret: string;
  certPem: string;
  keyPem: string;
}

export async function createDemoCredentials(): Promise<DemoCredentials> {
  const cert = await createClientCertificate({ commonName: "apptoken-dev-app" });
  return { clientSecret: randomBytes(24).toString("base64url"), certPem: cert.certPem, keyPem: cert.keyPem };
}

export function tokenServiceConfig(creds: DemoCredentials): TokenServiceConfigInput {
  return {
    tenants: [{ id: DEMO_TENANT_ID, domains: [DEMO_TENANT_DOMAIN] }],
    apps: [
      {
        tenantId: DEMO_TENANT_ID,
        clientId: DEMO_CLIENT_ID,
        secrets: [creds.clientSecret],
        certificates: [creds.certPem],
      },
    ],
    resources: [DEMO_RESOURCE],
    tokenLifetimeSeconds: 3599,
  };
}

/** `authorityHost` is the token service's origin, e.g. https://127.0.0.1:41234. */
export function demoManifests(creds: DemoCredentials, authorityHost: string): Manifest[] {
  const common = {
    tenantId: DEMO_TENANT_DOMAIN,
    clientId: DEMO_CLIENT_ID,
    scope: `${DEMO_RESOURCE}/.default`,
    authorityHost,
  };
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: DEMO_NAMESPACE } },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "app-credentials", namespace: DEMO_NAMESPACE },
      type: "Opaque",
      stringData: { "client-secret": creds.clientSecret },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "app-certificate", namespace: DEMO_NAMESPACE },
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": creds.certPem, "tls.key": creds.keyPem },
    },
    {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name: "graph-client-secret", namespace: DEMO_NAMESPACE },
      spec: {
        ...common,
        credential: { clientSecret: { secretRef: { name: "app-credentials", key: "client-secret" } } },
        target: { template: { data: { authorization: "Bearer {{ .accessToken }}" } } },
      },
    },
    {
      apiVersion: "apptoken.io/v1alpha1",
      kind: "AppTokenRequest",
      metadata: { name: "graph-certificate", namespace: DEMO_NAMESPACE },
      spec: { ...common, credential: { certificate: { secretRef: { name: "app-certificate" } } } },
    },
  ];
}
