/**
 * What the fleet tier writes to Redis: a token sealed with AES-256-GCM, addressed by an HMAC of its
 * cache key id. Both keys are derived (HKDF-SHA256) from the one 32-byte fleet key, so an operator
 * with another key addresses a keyspace of its own and cannot read, or even find, anyone's tokens.
 *
 * Layout of a sealed value (base64url): version (1 byte) | nonce (12) | ciphertext | tag (16). The
 * associated data is the entry's Redis address, so a value copied under another key does not open.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import type { TokenResponse } from "../token-response.js";

export const FLEET_KEY_BYTES = 32;
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES;

/** The two keys derived from the fleet key; never logged, never leave the process. */
export interface FleetKeys {
  readonly seal: Buffer;
  readonly address: Buffer;
}

/** Why a stored value could not be opened; the tier treats each as a miss and calls itself. */
export class SealError extends Error {}

/** Derives the sealing and addressing keys; throws when the key is not exactly 32 bytes. */
export function deriveFleetKeys(fleetKey: Uint8Array): FleetKeys {
  if (fleetKey.length !== FLEET_KEY_BYTES) {
    throw new SealError(`the fleet key must be ${FLEET_KEY_BYTES} bytes, got ${fleetKey.length}`);
  }
  const derive = (info: string): Buffer =>
    Buffer.from(hkdfSync("sha256", fleetKey, Buffer.alloc(0), info, FLEET_KEY_BYTES));
  return { seal: derive("apptoken fleet tier v1 seal"), address: derive("apptoken fleet tier v1 address") };
}

/**
 * Parses a fleet key as a file or Secret holds it: base64 of 32 bytes (whitespace ignored). The
 * message never echoes the value.
 */
export function parseFleetKey(text: string, where: string): Buffer {
  const compact = text.replace(/\s+/g, "");
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(compact) ? Buffer.from(compact, "base64") : Buffer.alloc(0);
  if (bytes.length !== FLEET_KEY_BYTES) {
    throw new SealError(
      `${where} must hold base64 of ${FLEET_KEY_BYTES} random bytes (e.g. openssl rand -base64 32)`,
    );
  }
  return bytes;
}

/** The Redis address of a cache key id: HMAC-SHA256, hex. Tenants and client ids stay out of Redis. */
export function addressOf(keys: FleetKeys, keyId: string): string {
  return createHmac("sha256", keys.address).update(keyId, "utf8").digest("hex");
}

interface SealedBody {
  a: string;
  t: string;
  i: number;
  e: number;
  r?: number;
}

export function sealToken(keys: FleetKeys, address: string, token: TokenResponse): string {
  const body: SealedBody = {
    a: token.accessToken,
    t: token.tokenType,
    i: token.issuedAt,
    e: token.expiresAt,
  };
  if (token.refreshIn !== undefined) body.r = token.refreshIn;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keys.seal, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(address, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(body), "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, ciphertext, cipher.getAuthTag()]).toString("base64url");
}

/** Opens a value read at `address`; throws SealError for anything but an intact value of ours. */
export function openToken(keys: FleetKeys, address: string, value: string): TokenResponse {
  const raw = Buffer.from(value, "base64url");
  if (raw.length < HEADER_BYTES + TAG_BYTES + 2 || raw[0] !== VERSION) {
    throw new SealError("not a sealed token of this version");
  }
  const nonce = raw.subarray(1, HEADER_BYTES);
  const ciphertext = raw.subarray(HEADER_BYTES, raw.length - TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", keys.seal, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(address, "utf8"));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  let plain: string;
  try {
    plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString("utf8");
  } catch {
    // Wrong key, wrong address or a changed byte: GCM cannot tell which, and neither do we.
    throw new SealError("the sealed token does not authenticate");
  }
  let body: unknown;
  try {
    body = JSON.parse(plain);
  } catch {
    throw new SealError("the sealed token is not JSON");
  }
  return checkBody(body);
}

function checkBody(body: unknown): TokenResponse {
  if (typeof body !== "object" || body === null) throw new SealError("the sealed token holds no object");
  const b = body as Partial<Record<keyof SealedBody, unknown>>;
  if (
    typeof b.a !== "string" ||
    b.a === "" ||
    typeof b.t !== "string" ||
    typeof b.i !== "number" ||
    typeof b.e !== "number" ||
    !Number.isFinite(b.i) ||
    !Number.isFinite(b.e) ||
    (b.r !== undefined && typeof b.r !== "number")
  ) {
    throw new SealError("the sealed token lacks fields");
  }
  const token: TokenResponse = { accessToken: b.a, tokenType: b.t, issuedAt: b.i, expiresAt: b.e };
  if (typeof b.r === "number") token.refreshIn = b.r;
  return token;
}
