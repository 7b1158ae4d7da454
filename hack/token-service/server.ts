import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { JWTPayload } from "jose";
import type { Clock } from "../../src/clock.js";
import { systemClock } from "../../src/clock.js";
import { AccessTokenIssuer } from "./access-tokens.js";
import type { Decoded } from "./assertions.js";
import {
  JtiRegistry,
  decodeAssertion,
  verifyCertificateAssertion,
  verifyFederatedAssertion,
} from "./assertions.js";
import type {
  AppRegistration,
  AppRegistrationInput,
  TenantConfig,
  TokenServiceConfig,
  TokenServiceConfigInput,
} from "./config.js";
import { parseTokenServiceConfig } from "./config.js";
import type { EntraFailure } from "./entra-errors.js";
import { entra, entraErrorBody } from "./entra-errors.js";
import type { FaultBehaviour, FaultRule, RequestMatch } from "./faults.js";
import { FaultList, matches } from "./faults.js";
import { FederatedKeys } from "./federated-keys.js";
import type { CertificateAuthority, IssuedCertificate } from "./pki.js";
import { createCa, issueServerCertificate } from "./pki.js";

/**
 * A local stand-in for Entra ID's v2.0 token endpoint: HTTPS on 127.0.0.1, the client-credentials
 * grant with client secrets, certificate assertions and federated assertions, Entra's response
 * and error shapes, and scriptable faults. Used by the service tests and by `make dev`.
 */
export interface TokenServiceOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** The CA and server certificate; generated when omitted. */
  tls?: { ca: CertificateAuthority; server: IssuedCertificate };
  /** Decides token times and assertion validity; defaults to the system clock. */
  clock?: Clock;
  /** Allowed clock skew for assertions (Entra allows five minutes). */
  assertionSkewSeconds?: number;
  /** Extra CA to trust when fetching federated issuers' JWKS URLs. */
  jwksCaPem?: string;
  /** Called once per token request; entries never hold a secret, assertion or token. */
  log?: (entry: RequestLogEntry) => void;
}

export interface RequestLogEntry {
  time: string;
  method: string;
  path: string;
  tenant: string;
  clientId: string | undefined;
  credential: "secret" | "certificate" | "federated" | "none";
  status: number;
  aadsts?: number;
  fault?: FaultBehaviour["type"];
}

export interface TokenService {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** 127.0.0.1:PORT, for an AppTokenRequest's authorityHost. */
  readonly authorityHost: string;
  /** PEM of the CA that issued the service's TLS certificate. */
  readonly caPem: string;
  tokenEndpoint(tenant: string): string;
  /** The live configuration; change it through the methods below. */
  readonly config: TokenServiceConfig;
  /** Mutates one app registration (rotate a secret, add a certificate) for later requests. */
  updateApp(match: { clientId: string; tenantId?: string }, mutate: (app: AppRegistration) => void): void;
  addApp(app: AppRegistrationInput): void;
  /** Replaces the whole configuration. */
  setConfig(config: TokenServiceConfigInput): void;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  /** Token requests received (faulted ones included) for the match, or in total. */
  requests(match?: RequestMatch): number;
  /** Tokens issued for the match, or in total. */
  issued(match?: RequestMatch): number;
  resetCounters(): void;
  /** TLS connections accepted so far: shows whether clients reuse keep-alive connections. */
  connections(): number;
  /** Verifies an access token this service issued; returns its claims. */
  verifyAccessToken(token: string, tenantId: string): Promise<JWTPayload>;
  /** Stops listening and destroys every connection, hung ones included. */
  close(): Promise<void>;
}

const TOKEN_PATH = /^\/([^/]+)\/oauth2\/v2\.0\/token\/?$/;
const KEYS_PATH = /^\/([^/]+)\/discovery\/v2\.0\/keys\/?$/;
const METADATA_PATH = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration\/?$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/i;
const MAX_BODY = 64 * 1024;
const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

export async function startTokenService(
  configInput: TokenServiceConfigInput,
  options: TokenServiceOptions = {},
): Promise<TokenService> {
  let config = parseTokenServiceConfig(configInput);
  const clock = options.clock ?? systemClock;
  const skewSeconds = options.assertionSkewSeconds ?? 300;
  const tls = options.tls ?? (await generateTls());
  const issuer = await AccessTokenIssuer.create();
  const jtis = new JtiRegistry();
  const faults = new FaultList();
  const federatedKeys = new FederatedKeys(() => config, { caPem: options.jwksCaPem });
  const counters = new Map<
    string,
    { tenantIds: string[]; clientId: string | undefined; requests: number; issued: number }
  >();
  let origin = "";

  const count = (tenantIds: string[], clientId: string | undefined, field: "requests" | "issued") => {
    const key = `${tenantIds.join(",")}\n${clientId ?? ""}`;
    let entry = counters.get(key);
    if (entry === undefined) {
      entry = { tenantIds, clientId, requests: 0, issued: 0 };
      counters.set(key, entry);
    }
    entry[field] += 1;
  };

  const findTenant = (segment: string): TenantConfig | undefined => {
    const wanted = segment.toLowerCase();
    return config.tenants.find(
      (t) => t.id.toLowerCase() === wanted || t.domains.some((domain) => domain.toLowerCase() === wanted),
    );
  };

  const sendJson = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store, no-cache",
      pragma: "no-cache",
      ...headers,
    });
    res.end(JSON.stringify(body));
  };

  const sendFailure = (res: ServerResponse, failure: EntraFailure) =>
    sendJson(res, failure.status, entraErrorBody(failure, clock.now(), origin), failure.headers);

  async function handleToken(req: IncomingMessage, res: ServerResponse, segment: string): Promise<void> {
    const log: RequestLogEntry = {
      time: new Date().toISOString(),
      method: req.method ?? "",
      path: req.url ?? "",
      tenant: segment,
      clientId: undefined,
      credential: "none",
      status: 0,
    };
    const finish = (failure?: EntraFailure) => {
      log.status = failure?.status ?? 200;
      if (failure !== undefined) log.aadsts = failure.code;
      options.log?.(log);
    };

    const body = await readBody(req);
    const params = new URLSearchParams(body ?? "");
    const clientIdParam = params.get("client_id") ?? basicClientId(req.headers.authorization);
    log.clientId = clientIdParam ?? undefined;
    const tenant = findTenant(segment);
    const tenantIds = [...new Set([segment.toLowerCase(), ...(tenant ? [tenant.id.toLowerCase()] : [])])];
    count(tenantIds, clientIdParam ?? undefined, "requests");

    const fault = faults.take({ tenantIds, clientId: clientIdParam ?? undefined });
    if (fault !== undefined) {
      log.fault = fault.type;
      const failure = await applyFault(req, res, fault);
      log.status = res.headersSent ? res.statusCode : 0;
      if (failure !== undefined) log.aadsts = failure.code;
      options.log?.(log);
      return;
    }

    const failure = await (async (): Promise<EntraFailure | undefined> => {
      if (req.method !== "POST") return entra.postOnly(req.method ?? "");
      if (body === undefined) return entra.missingParameter("grant_type");
      for (const name of new Set(params.keys())) {
        if (params.getAll(name).length > 1) return entra.duplicateParameter(name);
      }
      if (tenant === undefined) {
        return GUID.test(segment) || DOMAIN.test(segment)
          ? entra.unknownTenant(segment)
          : entra.invalidTenantIdentifier(segment);
      }
      const grantType = params.get("grant_type");
      if (grantType === null) return entra.missingParameter("grant_type");
      if (grantType !== "client_credentials") return entra.unsupportedGrantType();
      if (clientIdParam === null) return entra.missingParameter("client_id");
      const app = config.apps.find(
        (a) => a.tenantId.toLowerCase() === tenant.id.toLowerCase() && a.clientId === clientIdParam,
      );
      if (app === undefined) return entra.unknownClient(clientIdParam, tenant.id);

      const authFailure = await authenticate(req, params, app, tenant, log);
      if (authFailure !== undefined) return authFailure;

      const scope = params.get("scope");
      if (scope === null || scope.trim() === "") return entra.missingParameter("scope");
      const scopes = scope.trim().split(/\s+/);
      if (scopes.length !== 1) return entra.invalidScope(scope);
      const only = scopes[0]!;
      if (!only.endsWith("/.default")) return entra.scopeWithoutDefault(only);
      const resource = only.slice(0, -"/.default".length);
      if (!config.resources.includes(resource)) return entra.unknownResource(resource, tenant.id);

      const now = clock.now();
      const lifetime = config.tokenLifetimeSeconds;
      const accessToken = await issuer.issue({
        origin,
        tenantId: tenant.id,
        clientId: app.clientId,
        resource,
        now,
        lifetimeSeconds: lifetime,
      });
      count(tenantIds, clientIdParam, "issued");
      sendJson(res, 200, {
        token_type: "Bearer",
        expires_in: lifetime,
        ext_expires_in: lifetime,
        ...(config.refreshInSeconds === undefined ? {} : { refresh_in: config.refreshInSeconds }),
        access_token: accessToken,
      });
      return undefined;
    })();
    if (failure !== undefined) sendFailure(res, failure);
    finish(failure);
  }

  async function authenticate(
    req: IncomingMessage,
    params: URLSearchParams,
    app: AppRegistration,
    tenant: TenantConfig,
    log: RequestLogEntry,
  ): Promise<EntraFailure | undefined> {
    const basic = basicCredentials(req.headers.authorization);
    const secret = params.get("client_secret") ?? basic?.secret ?? null;
    const assertion = params.get("client_assertion");
    if (secret !== null) {
      log.credential = "secret";
      if (basic !== undefined && basic.clientId !== app.clientId) return entra.invalidSecret(app.clientId);
      return app.secrets.includes(secret) ? undefined : entra.invalidSecret(app.clientId);
    }
    if (assertion === null) return entra.missingCredential();
    if (params.get("client_assertion_type") !== JWT_BEARER)
      return entra.missingParameter("client_assertion_type");
    const decoded: Decoded | undefined = decodeAssertion(assertion);
    if (decoded === undefined) return entra.malformedAssertion();
    const now = clock.now();
    // Entra tells the two kinds apart the same way: an app's own assertion is issued by the app.
    if (decoded.payload.iss === app.clientId) {
      log.credential = "certificate";
      const audiences = new Set(
        [tenant.id, ...tenant.domains].map((name) => `${origin}/${name}/oauth2/v2.0/token`),
      );
      return verifyCertificateAssertion(
        assertion,
        decoded,
        { app, clientId: app.clientId, acceptedAudiences: audiences, now, skewSeconds },
        jtis,
      );
    }
    log.credential = "federated";
    if (typeof decoded.payload.iss !== "string") return entra.malformedAssertion();
    return verifyFederatedAssertion(assertion, decoded, {
      app,
      now,
      skewSeconds,
      keysFor: (iss) => federatedKeys.keysFor(iss),
    });
  }

  async function applyFault(
    req: IncomingMessage,
    res: ServerResponse,
    fault: FaultBehaviour,
  ): Promise<EntraFailure | undefined> {
    switch (fault.type) {
      case "throttle": {
        const status = fault.status ?? 429;
        const headers: Record<string, string> = {};
        if (typeof fault.retryAfter === "number") headers["retry-after"] = String(fault.retryAfter);
        else if (typeof fault.retryAfter === "string") {
          headers["retry-after"] = new Date(
            Number(fault.retryAfter.slice("http-date:".length)),
          ).toUTCString();
        }
        if (status === 429) {
          // Throttling happens in front of the STS: no AADSTS code, just the status and Retry-After.
          sendJson(
            res,
            429,
            { error: "temporarily_unavailable", error_description: "Too many requests." },
            headers,
          );
          return undefined;
        }
        const failure = { ...entra.transient(status), headers };
        sendFailure(res, failure);
        return failure;
      }
      case "loopDetected": {
        const failure = entra.loopDetected();
        sendFailure(res, failure);
        return failure;
      }
      case "serverError": {
        const failure = entra.transient(fault.status ?? 500);
        sendFailure(res, failure);
        return failure;
      }
      case "hang":
        // Nothing is written; close() or the client's timeout ends it.
        return undefined;
      case "reset":
        req.socket.destroy();
        return undefined;
      case "malformed": {
        const variant = fault.variant ?? "truncated";
        if (variant === "html") {
          res.writeHead(200, { "content-type": "text/html" });
          res.end("<html><body>Sign in to your account</body></html>");
        } else {
          res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
          res.end(
            variant === "missingFields"
              ? JSON.stringify({ token_type: "Bearer", ext_expires_in: 3599 })
              : '{"token_type":"Bearer","expires_in":3599,"access_tok',
          );
        }
        return undefined;
      }
      case "oversized": {
        const total = fault.bytes ?? 1024 * 1024;
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.on("error", () => undefined);
        const chunk = "A".repeat(16 * 1024);
        res.write('{"token_type":"Bearer","expires_in":3599,"access_token":"');
        for (let sent = 0; sent < total && !res.destroyed; sent += chunk.length) {
          // Whichever fires first removes both: a "close" left per drain piles up on the response.
          if (!res.write(chunk))
            await new Promise<void>((resolve) => {
              const done = () => {
                res.off("drain", done).off("close", done);
                resolve();
              };
              res.once("drain", done).once("close", done);
            });
        }
        if (!res.destroyed) res.end('"}');
        return undefined;
      }
    }
  }

  const server = createServer({ key: tls.server.keyPem, cert: tls.server.certPem }, (req, res) => {
    const path = new URL(req.url ?? "/", "https://placeholder").pathname;
    const token = TOKEN_PATH.exec(path);
    const keys = KEYS_PATH.exec(path);
    const metadata = METADATA_PATH.exec(path);
    let work: Promise<void>;
    if (token) {
      work = handleToken(req, res, decodeURIComponent(token[1]!));
    } else if (keys) {
      work = Promise.resolve(sendJson(res, 200, issuer.jwks()));
    } else if (metadata) {
      const tenant = findTenant(decodeURIComponent(metadata[1]!));
      work = Promise.resolve(
        tenant === undefined
          ? sendFailure(res, entra.unknownTenant(metadata[1]!))
          : sendJson(res, 200, {
              issuer: issuer.issuerFor(origin, tenant.id),
              token_endpoint: `${origin}/${tenant.id}/oauth2/v2.0/token`,
              jwks_uri: `${origin}/${tenant.id}/discovery/v2.0/keys`,
              token_endpoint_auth_methods_supported: [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
              ],
              grant_types_supported: ["client_credentials"],
              id_token_signing_alg_values_supported: ["RS256"],
            }),
      );
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      work = Promise.resolve();
    }
    work.catch((error: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`local token service error: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
  });

  let closing: Promise<void> | undefined;
  let connections = 0;
  server.on("secureConnection", () => {
    connections += 1;
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `https://127.0.0.1:${port}`;

  return {
    url: origin,
    authorityHost: `127.0.0.1:${port}`,
    caPem: tls.ca.certPem,
    tokenEndpoint: (tenant) => `${origin}/${tenant}/oauth2/v2.0/token`,
    get config() {
      return config;
    },
    updateApp(match, mutate) {
      const app = config.apps.find(
        (a) =>
          a.clientId === match.clientId && (match.tenantId === undefined || a.tenantId === match.tenantId),
      );
      if (app === undefined) throw new Error(`no app ${match.clientId} in the token service config`);
      mutate(app);
    },
    addApp(app) {
      config = parseTokenServiceConfig({ ...config, apps: [...config.apps, app] });
    },
    setConfig(next) {
      config = parseTokenServiceConfig(next);
    },
    addFault: (rule) => faults.add(rule),
    clearFaults: () => faults.clear(),
    requests: (match) => sum(counters, match, "requests"),
    issued: (match) => sum(counters, match, "issued"),
    resetCounters: () => {
      counters.clear();
      connections = 0;
    },
    connections: () => connections,
    verifyAccessToken: (token, tenantId) => issuer.verify(token, { origin, tenantId, now: clock.now() }),
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await federatedKeys.close();
      })()),
  };
}

async function generateTls(): Promise<{ ca: CertificateAuthority; server: IssuedCertificate }> {
  const ca = await createCa({ commonName: "apptoken local token service CA" });
  return { ca, server: await issueServerCertificate(ca) };
}

function sum(
  counters: Map<
    string,
    { tenantIds: string[]; clientId: string | undefined; requests: number; issued: number }
  >,
  match: RequestMatch | undefined,
  field: "requests" | "issued",
): number {
  let total = 0;
  for (const entry of counters.values()) if (matches(match, entry)) total += entry[field];
  return total;
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return size === 0 ? undefined : Buffer.concat(chunks).toString("utf8");
}

function basicCredentials(header: string | undefined): { clientId: string; secret: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? "");
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon === -1) return undefined;
  const unform = (value: string) => decodeURIComponent(value.replace(/\+/g, "%20"));
  try {
    return { clientId: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

function basicClientId(header: string | undefined): string | null {
  return basicCredentials(header)?.clientId ?? null;
}
