import { describe, expect, it } from "vitest";
import type { AuthorityPolicy, AuthoritySpec } from "../../../src/identity/authority.js";
import {
  allowedHostSet,
  cloudAuthorityHosts,
  isLoopbackHost,
  tokenEndpointFor,
} from "../../../src/identity/authority.js";
import { PermanentError } from "../../../src/identity/errors.js";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
// These cases are about the shape of endpoints, so any host is allowed; the allow-list has its own
// cases at the end of this file and in authority-allowed-hosts.test.ts.
const strict: AuthorityPolicy = { allowInsecureLoopback: false, allowedHosts: "any" };
const dev: AuthorityPolicy = { allowInsecureLoopback: true, allowedHosts: "any" };

function endpoint(spec: Partial<AuthoritySpec>, policy = strict): string {
  return tokenEndpointFor({ tenantId: TENANT, ...spec }, policy).href;
}

function reasonOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PermanentError);
    return (error as PermanentError).reason;
  }
  return undefined;
}

describe("tokenEndpointFor", () => {
  it("uses the public cloud by default", () => {
    expect(endpoint({})).toBe(`https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`);
  });

  it.each([
    ["AzurePublic", "login.microsoftonline.com"],
    ["AzureChina", "login.chinacloudapi.cn"],
    ["AzureUSGovernment", "login.microsoftonline.us"],
  ] as const)("knows the %s host", (cloud, host) => {
    expect(cloudAuthorityHosts[cloud]).toBe(host);
    expect(endpoint({ cloud })).toBe(`https://${host}/${TENANT}/oauth2/v2.0/token`);
  });

  it("accepts a verified domain as the tenant", () => {
    expect(endpoint({ tenantId: "contoso.onmicrosoft.com" })).toBe(
      "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
    );
  });

  it.each([
    ["a bare host", "login.example", "https://login.example"],
    ["host:port", "login.example:8443", "https://login.example:8443"],
    ["an https URL", "https://login.example", "https://login.example"],
    ["an https URL with a trailing slash", "https://login.example/", "https://login.example"],
    ["an https URL with a path prefix", "https://gw.example/entra/", "https://gw.example/entra"],
    ["an https URL with the default port", "https://login.example:443", "https://login.example"],
  ])("lets authorityHost be %s", (_what, authorityHost, base) => {
    expect(endpoint({ authorityHost, cloud: "AzureChina" })).toBe(`${base}/${TENANT}/oauth2/v2.0/token`);
  });

  it("lets tokenEndpoint replace the whole URL, filling in {tenant}", () => {
    expect(
      endpoint({
        tokenEndpoint: "https://idp.example/realms/{tenant}/token",
        authorityHost: "ignored.example",
      }),
    ).toBe(`https://idp.example/realms/${TENANT}/token`);
    expect(endpoint({ tokenEndpoint: "https://idp.example/token" })).toBe("https://idp.example/token");
  });

  it("refuses plain http by default, even on loopback", () => {
    expect(reasonOf(() => endpoint({ authorityHost: "http://127.0.0.1:8080" }))).toBe("InsecureAuthority");
    expect(reasonOf(() => endpoint({ tokenEndpoint: "http://127.0.0.1:8080/token" }))).toBe(
      "InsecureAuthority",
    );
  });

  it.each(["http://127.0.0.1:8080", "http://127.42.0.9", "http://[::1]:9000", "http://[0:0:0:0:0:0:0:1]"])(
    "allows plain http to %s when loopback development is on",
    (authorityHost) => {
      expect(endpoint({ authorityHost }, dev)).toMatch(/^http:\/\//);
    },
  );

  it.each([
    ["a name that may resolve anywhere", "http://localhost:8080"],
    ["a routable address", "http://10.0.0.1"],
    ["an IPv4-mapped IPv6 address", "http://[::ffff:127.0.0.1]"],
    ["a look-alike name", "http://127.0.0.1.nip.io"],
  ])("refuses plain http to %s even in loopback development", (_what, authorityHost) => {
    expect(reasonOf(() => endpoint({ authorityHost }, dev))).toBe("InsecureAuthority");
  });

  it.each([
    ["another scheme", "ftp://login.example"],
    ["credentials in the URL", "https://user:pw@login.example"],
    ["a query", "https://login.example/?x=1"],
    ["a bare host with a path", "login.example/prefix"],
    ["an empty value", ""],
  ])("rejects an authorityHost with %s", (_what, authorityHost) => {
    expect(reasonOf(() => endpoint({ authorityHost }))).toBe("InvalidAuthority");
  });

  it.each([
    ["common"],
    ["organizations"],
    ["consumers"],
    ["../../evil"],
    ["contoso"],
    ["tenant with spaces.example"],
    [""],
  ])("rejects the tenant %j", (tenantId) => {
    expect(reasonOf(() => endpoint({ tenantId }))).toBe("InvalidTenant");
  });
});

describe("tokenEndpointFor with --allowed-authority-hosts", () => {
  const only = (...entries: string[]): AuthorityPolicy => ({
    allowInsecureLoopback: false,
    allowedHosts: allowedHostSet(entries),
  });

  it("builds the endpoint for an allowed authorityHost exactly as without a list", () => {
    expect(endpoint({ authorityHost: "login.example:8443" }, only("login.example:8443"))).toBe(
      endpoint({ authorityHost: "login.example:8443" }),
    );
  });

  it.each([
    ["an authorityHost", { authorityHost: "login.example" }],
    ["an authorityHost on another port", { authorityHost: "login.microsoftonline.com:444" }],
    ["a tokenEndpoint", { tokenEndpoint: "https://idp.example/{tenant}/token" }],
    ["a cloud", { cloud: "AzureChina" as const }],
  ])("refuses %s whose host:port is not listed, with AuthorityNotAllowed", (_what, spec) => {
    expect(reasonOf(() => endpoint(spec, only("login.microsoftonline.com")))).toBe("AuthorityNotAllowed");
  });

  it("still reports a bad tenant or a malformed authority for what it is", () => {
    expect(reasonOf(() => endpoint({ tenantId: "common" }, only("login.microsoftonline.com")))).toBe(
      "InvalidTenant",
    );
    expect(reasonOf(() => endpoint({ authorityHost: "ftp://login.example" }, only("login.example")))).toBe(
      "InvalidAuthority",
    );
  });
});

describe("isLoopbackHost", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.255.255.254", true],
    ["[::1]", true],
    ["::1", true],
    ["128.0.0.1", false],
    ["localhost", false],
    ["[::ffff:7f00:1]", false],
    ["[::2]", false],
  ])("%s -> %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});
