import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/observability/logger.js";

function capture(): { sink: Writable; lines: () => Record<string, unknown>[] } {
  let out = "";
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out += String(chunk);
      cb();
    },
  });
  const lines = () =>
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { sink, lines };
}

describe("the logger", () => {
  it('names the level of each line ("level":"warn", not a number) and still redacts', () => {
    const { sink, lines } = capture();
    const log = createLogger({ level: "trace", format: "json", destination: sink });
    log.trace("t");
    log.debug("d");
    log.info({ accessToken: "eyJ.secret.sig" }, "i");
    log.warn("w");
    log.error("e");
    log.fatal("f");
    log.child({ request: "ns/a" }).info("child");
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      ["trace", "t"],
      ["debug", "d"],
      ["info", "i"],
      ["warn", "w"],
      ["error", "e"],
      ["fatal", "f"],
      ["info", "child"],
    ]);
    expect(lines()[2]!.accessToken).toBe("[redacted]");
  });

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
