import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, redactSensitive } from "../../../src/observability/logger.js";

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

  it("redacts a child's bindings too", () => {
    const { sink, lines } = capture();
    const log = createLogger({ level: "info", format: "json", destination: sink });
    log
      .child({ component: "identity", clientSecret: "bound-secret" })
      .info({ items: [{ token: "t-in-array" }] }, "x");
    const [line] = lines();
    expect(line).toMatchObject({
      component: "identity",
      clientSecret: "[redacted]",
      items: [{ token: "[redacted]" }],
    });
    expect(JSON.stringify(line)).not.toMatch(/bound-secret|t-in-array/);
    log
      .child({ component: "kube" })
      .child({ request: { token: "grandchild-token" } })
      .info("y");
    expect(lines()[1]).toMatchObject({ component: "kube", request: { token: "[redacted]" } });
    expect(JSON.stringify(lines()[1])).not.toContain("grandchild-token");
  });
});

describe("redactSensitive", () => {
  it("hands back the very object when it holds nothing sensitive (no copy per line)", () => {
    const line = { request: "ns/a", ready: "True", status: { reason: "TokenIssued" }, list: [1, { a: 2 }] };
    expect(redactSensitive(line)).toBe(line);
  });

  it("copies only what it censors, and never changes the caller's object", () => {
    const nested = { kept: { n: 1 } };
    const line = { request: "ns/a", credential: { privateKey: "pem", kind: "certificate" }, nested };
    const out = redactSensitive(line);
    expect(out).toEqual({
      request: "ns/a",
      credential: { privateKey: "[redacted]", kind: "certificate" },
      nested,
    });
    expect(out.nested).toBe(nested);
    expect(line.credential.privateKey).toBe("pem");
  });

  it("looks three levels down, as far as the operator logs", () => {
    const out = redactSensitive({ a: { b: { password: "p3" } }, c: { d: { e: { password: "p4" } } } });
    expect(out.a.b.password).toBe("[redacted]");
    expect(out.c.d.e.password).toBe("p4");
  });

  it("leaves fields that are absent absent, and Errors to pino's serializer", () => {
    const err = new Error("boom");
    const line = { token: undefined, err };
    expect(redactSensitive(line)).toBe(line);
  });
});
