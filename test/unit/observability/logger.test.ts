import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/observability/logger.js";

describe("the logger", () => {
  it("redacts tokens, secrets, assertions and keys wherever they hide, at every level", () => {
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk);
        cb();
      },
    });
    const log = createLogger({ level: "trace", format: "json", destination: sink });
    const secrets = [
      "eyJhbGciOi.token.sig",
      "client-secret-value",
      "assertion-jwt",
      "-----BEGIN PRIVATE KEY-----abc",
      "pfx-password",
    ];
    log.trace({ accessToken: secrets[0] }, "a");
    log.debug({ request: { clientSecret: secrets[1], client_assertion: secrets[2] } }, "b");
    log.info({ deep: { credential: { privateKey: secrets[3] } } }, "c");
    log.warn({ password: secrets[4], secret: { data: { "client-secret": "c2VjcmV0" } } }, "d");
    for (const s of secrets) expect(out).not.toContain(s);
    expect(out).not.toContain("c2VjcmV0");
    expect(out).toContain("[redacted]");
  });
});
