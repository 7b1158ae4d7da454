/**
 * What `make dev` shows: one tenant and one app in the local token service, with a client secret
 * and a registered certificate (both fresh on every run), and the objects that use them:
 *
 *   - in the cluster resource namespace `apptoken-system`: the client secret, as a Secret only the
 *     cluster admin and the operator read;
 *   - ClusterAppRegistration `demo-app` (the client secret), offered to the namespaces labelled
 *     apptoken.io/tenant-tokens=true: `demo` and `demo-b`, each with an AppTokenRequest for it
 *     (the same tenant and scope, so they share one token);
 *   - in `demo`, AppRegistration `demo-app-certificate` (the certificate, in a Secret of `demo`)
 *     and a request for it.
 */
import { randomBytes } from "node:crypto";
import { createClientCertificate } from "../token-service/pki.js";
import type { TokenServiceConfigInput } from "../token-service/config.js";
import type { Manifest } from "./deploy-manifests.js";

/** Where ClusterAppRegistrations' credentials live: given to the operator as --cluster-resource-namespace. */
export const DEMO_CLUSTER_RESOURCE_NAMESPACE = "apptoken-system";
export const DEMO_NAMESPACE = "demo";
export const DEMO_NAMESPACE_B = "demo-b";
/** The label the ClusterAppRegistration's namespaceSelector asks for. */
export const DEMO_NAMESPACE_LABEL = { "apptoken.io/tenant-tokens": "true" } as const;
export const DEMO_TENANT_ID = "6f1c2b7a-1d4e-4c8b-9a3f-0e5d7c2b1a90";
export const DEMO_TENANT_DOMAIN = "contoso.onmicrosoft.com";
export const DEMO_CLIENT_ID = "8d2e4f6a-3b5c-4d7e-9f1a-2b3c4d5e6f70";
export const DEMO_RESOURCE = "https://graph.microsoft.com";
export const DEMO_SCOPE = `${DEMO_RESOURCE}/.default`;

/** ClusterAppRegistration (client secret) shared by both namespaces. */
export const DEMO_CLUSTER_REGISTRATION = "demo-app";
/** AppRegistration (certificate) of namespace demo. */
export const DEMO_REGISTRATION = "demo-app-certificate";

export interface DemoRegistration {
  kind: "AppRegistration" | "ClusterAppRegistration";
  name: string;
  /** Only for an AppRegistration. */
  namespace?: string;
  /** How many requests name it: what its status.requests (the Requests column) settles on. */
  requests: number;
}

/** The registrations, and how many of the requests below name each. */
export const DEMO_REGISTRATIONS: readonly DemoRegistration[] = [
  { kind: "ClusterAppRegistration", name: DEMO_CLUSTER_REGISTRATION, requests: 2 },
  { kind: "AppRegistration", name: DEMO_REGISTRATION, namespace: DEMO_NAMESPACE, requests: 1 },
];

export interface DemoRequest {
  namespace: string;
  /** Also the name of the Secret it fills. */
  name: string;
  registration: DemoRegistration;
}

/** The AppTokenRequests, each named like the Secret it fills. */
export const DEMO_REQUESTS: readonly DemoRequest[] = [
  { namespace: DEMO_NAMESPACE, name: "graph-client-secret", registration: DEMO_REGISTRATIONS[0]! },
  { namespace: DEMO_NAMESPACE_B, name: "graph-client-secret", registration: DEMO_REGISTRATIONS[0]! },
  { namespace: DEMO_NAMESPACE, name: "graph-certificate", registration: DEMO_REGISTRATIONS[1]! },
];

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
  const api = "apptoken.io/v1alpha1";
  const request = (r: DemoRequest, extra: Record<string, unknown> = {}): Manifest => ({
    apiVersion: api,
    kind: "AppTokenRequest",
    metadata: { name: r.name, namespace: r.namespace },
    spec: {
      appRef: { kind: r.registration.kind, name: r.registration.name },
      tenantId: DEMO_TENANT_DOMAIN,
      scope: DEMO_SCOPE,
      ...extra,
    },
  });
  const [demoSecret, demoBSecret, demoCertificate] = DEMO_REQUESTS as [DemoRequest, DemoRequest, DemoRequest];
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: DEMO_CLUSTER_RESOURCE_NAMESPACE } },
    ...[DEMO_NAMESPACE, DEMO_NAMESPACE_B].map((name): Manifest => ({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name, labels: { ...DEMO_NAMESPACE_LABEL } },
    })),
    // The cluster admin's: the client secret, where app teams cannot read it, and the registration
    // that offers it to the labelled namespaces.
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "demo-app-credentials", namespace: DEMO_CLUSTER_RESOURCE_NAMESPACE },
      type: "Opaque",
      stringData: { "client-secret": creds.clientSecret },
    },
    {
      apiVersion: api,
      kind: "ClusterAppRegistration",
      metadata: { name: DEMO_CLUSTER_REGISTRATION },
      spec: {
        clientId: DEMO_CLIENT_ID,
        cloud: "AzurePublic",
        authorityHost,
        credential: { clientSecret: { secretRef: { name: "demo-app-credentials", key: "client-secret" } } },
        namespaceSelector: { matchLabels: { ...DEMO_NAMESPACE_LABEL } },
        allowedTenants: [DEMO_TENANT_DOMAIN],
        allowedScopes: [DEMO_SCOPE],
      },
    },
    // Namespace demo's admin: the certificate and a registration only demo's requests may use.
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "demo-app-certificate", namespace: DEMO_NAMESPACE },
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": creds.certPem, "tls.key": creds.keyPem },
    },
    {
      apiVersion: api,
      kind: "AppRegistration",
      metadata: { name: DEMO_REGISTRATION, namespace: DEMO_NAMESPACE },
      spec: {
        clientId: DEMO_CLIENT_ID,
        cloud: "AzurePublic",
        authorityHost,
        credential: { certificate: { secretRef: { name: "demo-app-certificate" }, sendX5C: false } },
      },
    },
    // The app teams': a tenant and a scope asked of a registration, nothing more.
    request(demoSecret, { target: { template: { data: { authorization: "Bearer {{ .accessToken }}" } } } }),
    request(demoBSecret),
    request(demoCertificate),
  ];
}
