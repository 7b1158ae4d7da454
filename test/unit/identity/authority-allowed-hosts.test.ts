import { describe, expect, it } from "vitest";
import { DEFAULT_ALLOWED_AUTHORITY_HOSTS } from "../../../src/config.js";
import type { AllowedHosts, AuthorityPolicy, AuthoritySpec, Cloud } from "../../../src/identity/authority.js";
import {
  allowedHostSet,
  authorityBaseFor,
  checkAllowedHost,
  cloudAuthorityHosts,
  tokenEndpointFor,
} from "../../../src/identity/authority.js";
import { PermanentError } from "../../../src/identity/errors.js";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const clouds = allowedHostSet(DEFAULT_ALLOWED_AUTHORITY_HOSTS);

function policy(allowedHosts: AllowedHosts, allowInsecureLoopback = false): AuthorityPolicy {
  return { allowInsecureLoopback, allowedHosts };
}

/** The reason `run` is refused with, or undefined when it is not. */
function reasonOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PermanentError);
    return (error as PermanentError).reason;
  }
  return undefined;
}

function allowed(url: string, entries: readonly string[]): boolean {
  return reasonOf(() => checkAllowedHost(new URL(url), allowedHostSet(entries))) === undefined;
}

describe("allowedHostSet (--allowed-authority-hosts)", () => {
  it.each([
    ["a host means port 443", "login.example", "login.example:443"],
    ["host:port keeps its port", "login.example:8443", "login.example:8443"],
    ["upper case is lowered", "LOGIN.Example:8443", "login.example:8443"],
    ["surrounding spaces are dropped", "  login.example ", "login.example:443"],
    ["an IPv4 literal", "127.0.0.1:9443", "127.0.0.1:9443"],
    ["a bracketed IPv6 literal without a port", "[::1]", "[::1]:443"],
    ["a bracketed IPv6 literal with a port", "[::1]:8443", "[::1]:8443"],
  ])("normalises entries to lower-case host:port: %s", (_what, entry, normalised) => {
    expect([...allowedHostSet([entry])]).toEqual([normalised]);
  });

  it("includes, by default, the host of every Entra ID cloud and nothing else", () => {
    expect([...clouds].sort()).toEqual(
      Object.values(cloudAuthorityHosts)
        .map((h) => `${h}:443`)
        .sort(),
    );
  });
});

describe("checkAllowedHost", () => {
  it.each<[string, string, readonly string[], boolean]>([
    [
      "the allowed host on the default port",
      "https://login.example/t/oauth2/v2.0/token",
      ["login.example"],
      true,
    ],
    ["the allowed host with :443 written out", "https://login.example:443/t", ["login.example"], true],
    ["the allowed host in other case", "https://LOGIN.EXAMPLE/t", ["login.example"], true],
    ["another port of a host allowed without one", "https://login.example:8443/t", ["login.example"], false],
    ["the allowed port of a host", "https://login.example:8443/t", ["login.example:8443"], true],
    [
      "the default port of a host allowed only with another",
      "https://login.example/t",
      ["login.example:8443"],
      false,
    ],
    ["plain http (port 80) of a host allowed on 443", "http://login.example/t", ["login.example"], false],
    ["a subdomain of an allowed host", "https://evil.login.example/t", ["login.example"], false],
    ["a look-alike ending in an allowed host", "https://evillogin.example/t", ["login.example"], false],
    ["an allowed host as a label of another", "https://login.example.evil.test/t", ["login.example"], false],
    ["an allowed host as the URL's user name", "https://login.example@evil.test/t", ["login.example"], false],
    ["an allowed host in the path", "https://evil.test/login.example/t", ["login.example"], false],
    ["the allowed IPv6 literal and port", "https://[::1]:8443/t", ["[::1]:8443"], true],
    ["another IPv6 literal", "https://[::2]:8443/t", ["[::1]:8443"], false],
    ["one of several entries", "https://login.microsoftonline.us/t", DEFAULT_ALLOWED_AUTHORITY_HOSTS, true],
    ["a host in no entry", "https://login.example/t", DEFAULT_ALLOWED_AUTHORITY_HOSTS, false],
    ["anything, with an empty list", "https://login.microsoftonline.com/t", [], false],
  ])("%s: %s -> %s", (_what, url, entries, expected) => {
    expect(allowed(url, entries)).toBe(expected);
  });

  it("refuses with AuthorityNotAllowed, naming the host and the flag that would allow it", () => {
    let error: unknown;
    try {
      checkAllowedHost(new URL("https://login.example:8443/secret-path?code=abc"), clouds);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ reason: "AuthorityNotAllowed", kind: "Permanent" });
    const message = (error as Error).message;
    expect(message).toContain("login.example:8443");
    expect(message).toContain("--allowed-authority-hosts");
    expect(message).not.toContain("code=abc");
  });

  it('allows any host with "any" (library callers that choose the endpoint themselves)', () => {
    expect(
      reasonOf(() => checkAllowedHost(new URL("https://anything.example:1234/t"), "any")),
    ).toBeUndefined();
  });

  it("accepts an IPv6 entry written in full as the same address a URL writes short", () => {
    // `[0:0:0:0:0:0:0:1]` passes --allowed-authority-hosts validation; the URL parser writes it `[::1]`.
    expect(allowed("https://[::1]:8443/t", ["[0:0:0:0:0:0:0:1]:8443"])).toBe(true);
  });
});

describe("authorityBaseFor and tokenEndpointFor with allowed hosts", () => {
  const endpoint = (spec: Partial<AuthoritySpec>, p: AuthorityPolicy) =>
    tokenEndpointFor({ tenantId: TENANT, ...spec }, p).href;

  it.each(Object.entries(cloudAuthorityHosts) as [Cloud, string][])(
    "lets a registration use the %s cloud with the default allowed hosts",
    (cloud, host) => {
      expect(authorityBaseFor({ cloud }, policy(clouds)).host).toBe(host);
      expect(endpoint({ cloud }, policy(clouds))).toBe(`https://${host}/${TENANT}/oauth2/v2.0/token`);
    },
  );

  it("refuses a cloud whose host the installer left out", () => {
    const publicOnly = policy(allowedHostSet(["login.microsoftonline.com"]));
    expect(reasonOf(() => authorityBaseFor({ cloud: "AzurePublic" }, publicOnly))).toBeUndefined();
    expect(reasonOf(() => authorityBaseFor({ cloud: "AzureChina" }, publicOnly))).toBe("AuthorityNotAllowed");
  });

  it.each([
    ["a bare host", "login.contoso.example"],
    ["host:port", "login.microsoftonline.com:8443"],
    ["an https URL", "https://login.contoso.example"],
    ["an https URL with a path prefix", "https://gw.contoso.example/entra"],
  ])("refuses an authorityHost that is %s outside the allowed hosts", (_what, authorityHost) => {
    expect(reasonOf(() => authorityBaseFor({ authorityHost }, policy(clouds)))).toBe("AuthorityNotAllowed");
    expect(reasonOf(() => endpoint({ authorityHost }, policy(clouds)))).toBe("AuthorityNotAllowed");
  });

  it("lets an authorityHost through once its host:port is allowed, path prefix and all", () => {
    const p = policy(allowedHostSet(["gw.contoso.example", "login.contoso.example:8443"]));
    expect(endpoint({ authorityHost: "https://gw.contoso.example/entra/" }, p)).toBe(
      `https://gw.contoso.example/entra/${TENANT}/oauth2/v2.0/token`,
    );
    expect(endpoint({ authorityHost: "login.contoso.example:8443" }, p)).toBe(
      `https://login.contoso.example:8443/${TENANT}/oauth2/v2.0/token`,
    );
  });

  it("refuses a tokenEndpoint override outside the allowed hosts, whatever cloud is named", () => {
    expect(
      reasonOf(() =>
        endpoint(
          { cloud: "AzurePublic", tokenEndpoint: "https://idp.example/{tenant}/token" },
          policy(clouds),
        ),
      ),
    ).toBe("AuthorityNotAllowed");
    expect(
      endpoint(
        { tokenEndpoint: "https://idp.example/{tenant}/token" },
        policy(allowedHostSet(["idp.example"])),
      ),
    ).toBe(`https://idp.example/${TENANT}/token`);
  });

  it("refuses plain http for its transport first, even to an allowed host", () => {
    const p = policy(allowedHostSet(["login.example:80"]));
    expect(reasonOf(() => authorityBaseFor({ authorityHost: "http://login.example" }, p))).toBe(
      "InsecureAuthority",
    );
  });

  it("allows plain http on loopback in development only when that host:port is allowed too", () => {
    const dev = (entries: string[]) => policy(allowedHostSet(entries), true);
    expect(
      reasonOf(() => authorityBaseFor({ authorityHost: "http://127.0.0.1:8080" }, dev(["127.0.0.1:8080"]))),
    ).toBe(undefined);
    expect(
      reasonOf(() => authorityBaseFor({ authorityHost: "http://127.0.0.1:8080" }, dev(["127.0.0.1"]))),
    ).toBe("AuthorityNotAllowed");
  });
});
