import { z } from "zod";

/**
 * What the local token service knows: tenants, app registrations with their credentials, and
 * resources. The same shape is read from JSON by main.ts, so it is defined as a zod schema.
 */
const federatedCredential = z.object({
  issuer: z.string().min(1),
  subject: z.string().min(1),
  /** Entra's default, and the only value it allows for most issuers. */
  audience: z.string().min(1).default("api://AzureADTokenExchange"),
});

/** Subject-name/issuer trust: any certificate with this subject, chained to this CA, is accepted (needs x5c). */
const trustedSubject = z.object({
  /** As Node prints it, e.g. "CN=payments.contoso.com". */
  subject: z.string().min(1),
  caPem: z.string().min(1),
});

const app = z.object({
  tenantId: z.string().min(1),
  clientId: z.string().min(1),
  secrets: z.array(z.string().min(1)).default([]),
  /** Registered certificates (PEM); assertions name them by x5t#S256 or x5t. */
  certificates: z.array(z.string().min(1)).default([]),
  federated: z.array(federatedCredential).default([]),
  trustedSubjects: z.array(trustedSubject).default([]),
});

const tenant = z.object({
  id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a GUID"),
  domains: z.array(z.string().min(1)).default([]),
});

const jsonWebKeySet = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

export const tokenServiceConfigSchema = z.object({
  tenants: z.array(tenant).min(1),
  apps: z.array(app).default([]),
  /** Resource identifiers, e.g. "https://graph.microsoft.com"; scopes are `{resource}/.default`. */
  resources: z.array(z.string().min(1)).default([]),
  /** Per federated issuer: its JWKS, inline or as a URL fetched on demand. */
  jwks: z.record(z.string(), z.union([jsonWebKeySet, z.url()])).default({}),
  tokenLifetimeSeconds: z.number().int().positive().default(3599),
  /** When set, every token response carries refresh_in (Entra sends it for long-lived tokens). */
  refreshInSeconds: z.number().int().positive().optional(),
});

export type TokenServiceConfigInput = z.input<typeof tokenServiceConfigSchema>;
export type TokenServiceConfig = z.output<typeof tokenServiceConfigSchema>;
export type AppRegistrationInput = NonNullable<TokenServiceConfigInput["apps"]>[number];
export type AppRegistration = TokenServiceConfig["apps"][number];
export type FederatedCredential = AppRegistration["federated"][number];
export type TenantConfig = TokenServiceConfig["tenants"][number];
export type JsonWebKeySet = z.infer<typeof jsonWebKeySet>;

export function parseTokenServiceConfig(input: unknown): TokenServiceConfig {
  return tokenServiceConfigSchema.parse(input);
}
