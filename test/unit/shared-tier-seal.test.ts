import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  SealError,
  addressOf,
  deriveFleetKeys,
  openToken,
  parseFleetKey,
  sealToken,
} from "../../src/cache/shared-tier/sealed-token.js";
import type { TokenResponse } from "../../src/cache/token-response.js";

const TOKEN: TokenResponse = {
  accessToken: "eyJhbGciOiJSUzI1NiJ9.payload-that-must-not-leak.signature",
  tokenType: "Bearer",
  issuedAt: Date.parse("2026-11-24T11:00:00Z"),
  expiresAt: Date.parse("2026-11-24T12:00:00Z"),
  refreshIn: 1800,
};
const KEY_ID = "login.microsoftonline.com|contoso|0a1b2c3d|https://graph.microsoft.com/.default|fp1";

function keys() {
  return deriveFleetKeys(randomBytes(32));
}

describe("sealed tokens", () => {
  it("open what they sealed, and the sealed value shows nothing of the token", () => {
    const k = keys();
    const address = addressOf(k, KEY_ID);
    const sealed = sealToken(k, address, TOKEN);
    expect(openToken(k, address, sealed)).toEqual(TOKEN);
    expect(sealed).not.toContain("payload-that-must-not-leak");
    expect(Buffer.from(sealed, "base64url").toString("latin1")).not.toContain("payload-that-must-not-leak");
    expect(address).toMatch(/^[0-9a-f]{64}$/);
    expect(address).not.toContain("contoso");
  });

  it("use a fresh nonce each time: the same token seals to different values", () => {
    const k = keys();
    const address = addressOf(k, KEY_ID);
    expect(sealToken(k, address, TOKEN)).not.toBe(sealToken(k, address, TOKEN));
  });

  it("refuse a value with any byte changed", () => {
    const k = keys();
    const address = addressOf(k, KEY_ID);
    const raw = Buffer.from(sealToken(k, address, TOKEN), "base64url");
    for (const at of [0, 1, 13, Math.floor(raw.length / 2), raw.length - 1]) {
      const tampered = Buffer.from(raw);
      tampered[at] = tampered[at]! ^ 0x01;
      expect(() => openToken(k, address, tampered.toString("base64url")), `byte ${at}`).toThrow(SealError);
    }
  });

  it("refuse a value sealed under another fleet key", () => {
    const mine = keys();
    const theirs = keys();
    const address = addressOf(mine, KEY_ID);
    expect(() => openToken(mine, address, sealToken(theirs, address, TOKEN))).toThrow(SealError);
  });

  it("refuse a value moved to another address (the address is the associated data)", () => {
    const k = keys();
    const here = addressOf(k, KEY_ID);
    const there = addressOf(k, `${KEY_ID}-other`);
    expect(() => openToken(k, there, sealToken(k, here, TOKEN))).toThrow(SealError);
  });

  it("refuse garbage without throwing anything but SealError", () => {
    const k = keys();
    const address = addressOf(k, KEY_ID);
    for (const garbage of [
      "",
      "x",
      "not base64 at all!!",
      "AQ",
      randomBytes(80).toString("base64url"),
      '{"a":"b"}',
    ]) {
      expect(() => openToken(k, address, garbage), JSON.stringify(garbage)).toThrow(SealError);
    }
  });

  it("derive addresses from the fleet key: another key addresses other entries", () => {
    const secret = randomBytes(32);
    expect(addressOf(deriveFleetKeys(secret), KEY_ID)).toBe(
      addressOf(deriveFleetKeys(Buffer.from(secret)), KEY_ID),
    );
    expect(addressOf(deriveFleetKeys(secret), KEY_ID)).not.toBe(addressOf(keys(), KEY_ID));
  });

  it("take a fleet key as base64 of exactly 32 bytes, and never echo a bad one", () => {
    const good = randomBytes(32).toString("base64");
    expect(parseFleetKey(`${good}\n`, "the file")).toHaveLength(32);
    for (const bad of ["", "c2hvcnQ=", randomBytes(48).toString("base64"), "not base64 at all!!"]) {
      try {
        parseFleetKey(bad, "the file");
        expect.fail(`accepted ${bad}`);
      } catch (e) {
        expect(e).toBeInstanceOf(SealError);
        if (bad !== "") expect((e as Error).message).not.toContain(bad);
      }
    }
    expect(() => deriveFleetKeys(randomBytes(16))).toThrow(SealError);
  });
});
