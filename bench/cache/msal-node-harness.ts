/**
 * @azure/msal-node's ConfidentialClientApplication with its network replaced by canned answers, so
 * the first acquireTokenByClientCredential per tenant fills MSAL's in-memory cache without leaving
 * the process and every later call is a pure MSAL cache hit. Benchmark-only (a devDependency).
 *
 * The network module (msal-node's `system.networkClient`, an INetworkModule) answers the three
 * requests MSAL makes: instance discovery and the tenant's OpenID configuration (GET), and the token
 * request (POST). It counts them, so the benchmark can show the measured calls made none.
 */
import { ConfidentialClientApplication } from "@azure/msal-node";
import type { INetworkModule, NetworkResponse } from "@azure/msal-node";

export const HOST = "login.microsoftonline.com";
export const CLIENT_ID = "6f1b5c2e-3d4a-4b8c-9e0f-112233445566";
export const SCOPE = "https://graph.microsoft.com/.default";

export class CannedEntraNetwork implements INetworkModule {
  gets = 0;
  posts = 0;
  private serial = 0;

  constructor(private readonly tokenBytes: number) {}

  async sendGetRequestAsync<T>(url: string): Promise<NetworkResponse<T>> {
    this.gets++;
    if (url.includes("/discovery/instance")) {
      return ok({
        tenant_discovery_endpoint: `https://${HOST}/{tenant}/v2.0/.well-known/openid-configuration`,
        "api-version": "1.1",
        metadata: [
          {
            preferred_network: HOST,
            preferred_cache: "login.windows.net",
            aliases: [HOST, "login.windows.net", "login.microsoft.com", "sts.windows.net"],
          },
        ],
      }) as NetworkResponse<T>;
    }
    // https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration
    const tenant = new URL(url).pathname.split("/")[1] ?? "";
    return ok({
      token_endpoint: `https://${HOST}/${tenant}/oauth2/v2.0/token`,
      authorization_endpoint: `https://${HOST}/${tenant}/oauth2/v2.0/authorize`,
      end_session_endpoint: `https://${HOST}/${tenant}/oauth2/v2.0/logout`,
      issuer: `https://${HOST}/${tenant}/v2.0`,
      jwks_uri: `https://${HOST}/${tenant}/discovery/v2.0/keys`,
    }) as NetworkResponse<T>;
  }

  async sendPostRequestAsync<T>(): Promise<NetworkResponse<T>> {
    this.posts++;
    return ok({
      token_type: "Bearer",
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: opaqueToken(++this.serial, this.tokenBytes),
    }) as NetworkResponse<T>;
  }
}

function ok(body: unknown): NetworkResponse<unknown> {
  return { headers: { "content-type": "application/json" }, body, status: 200 };
}

/**
 * A distinct token of `bytes` characters (at least the unique head). Built through a Buffer so that
 * it is one flat string of its own: padEnd or repeat would make ropes sharing their filler, and the
 * heap figures would then leave the token bytes out.
 */
export function opaqueToken(n: number, bytes: number): string {
  const head = `eyJ0eXAiOiJKV1QifQ.${n.toString(36)}.`;
  const buf = Buffer.alloc(Math.max(bytes, head.length), "x");
  buf.write(head, "latin1");
  return buf.toString("latin1");
}

export function tenantGuid(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
}

export function newCca(network: CannedEntraNetwork, tenant?: string): ConfidentialClientApplication {
  return new ConfidentialClientApplication({
    auth: {
      clientId: CLIENT_ID,
      clientSecret: "not-a-secret",
      authority: `https://${HOST}/${tenant ?? tenantGuid(0)}`,
    },
    system: { networkClient: network },
  });
}
