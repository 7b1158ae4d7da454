/**
 * `make e2e-kind` cannot run here (no Docker engine), so everything it uses is checked piece by
 * piece: the scripts parse (shellcheck: workflows.test.ts), the tool check says what is
 * missing, the certificates it issues name the Service and chain to the CA the operator is given,
 * the in-cluster token service entrypoint issues a token for deploy/samples/cluster's credentials
 * over that TLS, the JWT check works, every manifest it applies builds with kustomize and passes
 * the real apiserver's dry run, the operator is allowed to send credentials to the in-cluster token
 * service (and nowhere else), and the sample's registration selects the namespace the script
 * expects to be served and not the one it expects to be refused.
 */
import { execFile, spawn } from "node:child_process";
import {
  chmodSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  REPO_ROOT,
  parseManifests,
  renderKustomization,
  type Manifest,
} from "../../hack/dev/deploy-manifests.js";
import { loadConfig } from "../../src/config.js";
import { allowedHostSet, authorityBaseFor } from "../../src/identity/authority.js";
import { selectorMatches } from "../../src/controller/registrations/label-selector.js";
import type { LabelSelector } from "../../src/api/types.js";
import { binDir, kubeconfigPath, kubectl, testKubeConfig } from "../support/kube.js";

const E2E = join(REPO_ROOT, "hack/e2e-kind");
const MANIFESTS = join(E2E, "manifests");
const TS_HOST = "token-service.apptoken-e2e.svc";
const SAMPLE_DIR = join(REPO_ROOT, "deploy/samples/cluster");

/** The names hack/e2e-kind.sh waits for and checks (SAMPLE_NS=..., REFUSED_NS=...). */
function scriptVars(): Record<string, string> {
  const script = readFileSync(join(REPO_ROOT, "hack/e2e-kind.sh"), "utf8");
  return Object.fromEntries(
    [...script.matchAll(/^([A-Z_]+)=([A-Za-z0-9:/._-]+)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
}

/** deploy/samples/cluster as written (what make e2e-kind applies, before its two patches). */
function clusterSample(): Manifest[] {
  return readdirSync(SAMPLE_DIR)
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .flatMap((f) => parseManifests(readFileSync(join(SAMPLE_DIR, f), "utf8")));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = execFile(
      cmd,
      args,
      { cwd: REPO_ROOT, env: opts.env ?? process.env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolveRun({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
    child.stdin?.on("error", () => undefined); // EPIPE when the command exits without reading
    child.stdin?.end(opts.input ?? "");
  });
}

/** Runs `fn` (bash) with hack/e2e-kind/lib.sh sourced. */
const lib = (script: string, env?: NodeJS.ProcessEnv) =>
  run("bash", ["-c", `set -euo pipefail; source hack/e2e-kind/lib.sh; ${script}`], env ? { env } : {});

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "e2e-kind-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("hack/e2e-kind.sh and its helpers", () => {
  it("the scripts parse (bash -n)", async () => {
    for (const f of ["hack/e2e-kind.sh", "hack/e2e-kind/lib.sh", "hack/dev.sh"]) {
      const r = await run("bash", ["-n", f]);
      expect(r.code, `${f}: ${r.stderr}`).toBe(0);
    }
  });

  it("says every missing tool at once, and stops before touching anything", async () => {
    const empty = join(tmp, "empty-bin");
    const bin = join(tmp, "bash-only");
    for (const d of [empty, bin]) rmSync(d, { recursive: true, force: true });
    await run("mkdir", ["-p", empty, bin]);
    symlinkSync((await run("bash", ["-c", "command -v bash"])).stdout.trim(), join(bin, "bash"));
    const r = await lib("e2e_require_tools", { PATH: bin });
    expect(r.code).toBe(1);
    for (const tool of ["docker", "kind", "kubectl", "openssl", "base64"])
      expect(r.stderr).toContain(`- ${tool}`);

    // Every tool present but a Docker client without an engine.
    symlinkSync((await run("bash", ["-c", "command -v dirname"])).stdout.trim(), join(bin, "dirname"));
    for (const tool of ["kind", "kubectl", "openssl", "base64"]) {
      writeFileSync(join(bin, tool), "#!/bin/bash\nexit 0\n");
      chmodSync(join(bin, tool), 0o755);
    }
    writeFileSync(
      join(bin, "docker"),
      "#!/bin/bash\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n",
    );
    chmodSync(join(bin, "docker"), 0o755);
    const script = await run(join(bin, "bash"), [join(REPO_ROOT, "hack/e2e-kind.sh")], {
      env: { PATH: bin, HOME: tmp },
    });
    expect(script.code).toBe(1);
    expect(script.stderr).toContain("needs a running Docker engine");
    expect(script.stderr).not.toContain("creating kind cluster");
  });

  it("extracts a JWT's payload without printing the token", async () => {
    const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    // Payload lengths that need 0, 1 and 2 padding characters.
    for (const aud of ["https://graph.microsoft.com", "https://graph.microsoft.co", "api://x"]) {
      const jwt = `${b64url({ alg: "RS256" })}.${b64url({ aud, n: "é~?>" })}.sig`;
      const r = await lib(`e2e_jwt_payload "$1"`.replace("$1", jwt));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ aud, n: "é~?>" });
    }
  });
});

describe("the in-cluster token service, run here", () => {
  let pki: string;
  let port = 0;
  let proc: ReturnType<typeof spawn> | undefined;
  let stdout = "";

  beforeAll(async () => {
    pki = join(tmp, "pki");
    const r = await lib(`e2e_issue_certs "${pki}" "\${E2E_TS_HOSTS[@]}"`);
    expect(r.code, r.stderr).toBe(0);
    proc = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "hack/e2e-kind/token-service.ts",
        `--config=${join(MANIFESTS, "token-service/config.json")}`,
        `--tls-cert=${join(pki, "tls.crt")}`,
        `--tls-key=${join(pki, "tls.key")}`,
        "--listen-host=127.0.0.1",
        "--listen-port=0",
      ],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    proc.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    port = await new Promise<number>((resolvePort, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`token service did not start: ${err}`)), 30_000);
      proc!.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
        if (m) {
          clearTimeout(timer);
          resolvePort(Number(m[1]));
        }
      });
      proc!.once("exit", (code) => reject(new Error(`token service exited ${code}: ${err}`)));
    });
  });

  afterAll(() => {
    if (proc && proc.exitCode === null) proc.kill("SIGKILL");
  });

  it("issues a certificate for the Service's DNS names, chained to the CA", async () => {
    const verify = await run("openssl", ["verify", "-CAfile", join(pki, "ca.crt"), join(pki, "tls.crt")]);
    expect(verify.code, verify.stderr).toBe(0);
    const san = await run("openssl", [
      "x509",
      "-in",
      join(pki, "tls.crt"),
      "-noout",
      "-ext",
      "subjectAltName",
    ]);
    expect(san.stdout).toContain(`DNS:${TS_HOST}`);
    expect(san.stdout).toContain(`DNS:${TS_HOST}.cluster.local`);
  });

  /**
   * POSTs the client-credentials form as the operator would for the sample's request (the
   * ClusterAppRegistration's client id and client secret, the request's tenant and scope), dialling
   * 127.0.0.1 with the Service's name for TLS.
   */
  function tokenRequest(servername: string): Promise<{ status: number; body: any }> {
    const sample = clusterSample();
    const registration = sample.find((m) => m.kind === "ClusterAppRegistration")!.spec as any;
    const spec = sample.find((m) => m.kind === "AppTokenRequest")!.spec as any;
    const ref = registration.credential.clientSecret.secretRef;
    const secret = sample.find((m) => m.kind === "Secret" && m.metadata.name === ref.name)!;
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: registration.clientId,
      scope: spec.scope,
      client_secret: (secret.stringData as Record<string, string>)[ref.key]!,
    }).toString();
    return new Promise((resolveRes, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          servername,
          ca: readFileSync(join(pki, "ca.crt")),
          method: "POST",
          path: `/${spec.tenantId}/oauth2/v2.0/token`,
          headers: { "content-type": "application/x-www-form-urlencoded" },
        },
        (res) => {
          let data = "";
          res.on("data", (d: Buffer) => (data += d.toString()));
          res.on("end", () => resolveRes({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
        },
      );
      req.on("error", reject);
      req.end(form);
    });
  }

  it("serves TLS for https://token-service.apptoken-e2e.svc and issues a token for the sample's registration", async () => {
    const res = await tokenRequest(TS_HOST);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.token_type).toBe("Bearer");
    const payload = await lib(`e2e_jwt_payload "${res.body.access_token}"`);
    expect(JSON.parse(payload.stdout).aud).toBe("https://graph.microsoft.com");
    // The request log line names no secret and no token.
    expect(stdout).toContain('"credential":"secret"');
    expect(stdout).not.toContain(res.body.access_token);
    expect(stdout).not.toContain("replace-me-with-the-client-secret");
  });

  it("is refused by a client that dials another name (the certificate is specific)", async () => {
    await expect(tokenRequest("login.microsoftonline.com")).rejects.toThrow(/altnames|Hostname/i);
  });

  it("stops cleanly on SIGTERM", async () => {
    const exited = new Promise<number | null>((r) => proc!.once("exit", (code) => r(code)));
    proc!.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

describe("the manifests make e2e-kind applies", () => {
  const kc = testKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const kubectlPath = () => join(binDir(), "kubectl");
  const ours = ["apptoken-e2e", "e2e-demo", "e2e-unselected"]; // used by this file only
  const ensure = (name: string) =>
    core.createNamespace({ body: { metadata: { name } } }).catch((e: unknown) => {
      if ((e as { code?: number }).code !== 409) throw e;
    });

  beforeAll(async () => {
    for (const ns of [...ours, "apptoken-system"]) await ensure(ns);
  });
  afterAll(async () => {
    for (const ns of ours) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it("the token service: builds, passes the dry run, and serves what the sample's authorityHost names", async () => {
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "token-service"));
    const svc = ms.find((m) => m.kind === "Service") as any;
    expect(`${svc.metadata.name}.${svc.metadata.namespace}.svc`).toBe(TS_HOST);
    expect(svc.spec.ports).toEqual([{ name: "https", port: 443, targetPort: "https", protocol: "TCP" }]);
    const d = ms.find((m) => m.kind === "Deployment") as any;
    expect(d.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    expect(d.spec.template.spec.containers[0].image).toBe("apptoken-token-service:e2e");
    const r = await kubectl(["apply", "-k", join(MANIFESTS, "token-service"), "--dry-run=server"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("deployment.apps/token-service created (server dry run)");
  });

  it("the operator: deploy/ plus the CA and the token service's host, passes the dry run", async () => {
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "operator"));
    const pod = (ms.find((m) => m.kind === "Deployment") as any).spec.template.spec;
    const args: string[] = pod.containers[0].args;
    expect(args).toContain("--authority-ca-file=/etc/apptoken/authority-ca/ca.pem");
    expect(args).toContain(`--allowed-authority-hosts=${TS_HOST}:443`);
    expect(pod.containers[0].volumeMounts).toContainEqual({
      name: "authority-ca",
      mountPath: "/etc/apptoken/authority-ca",
      readOnly: true,
    });
    expect(pod.volumes).toContainEqual({ name: "authority-ca", configMap: { name: "token-service-ca" } });
    // Every CRD in crds/ (the script waits for each to be Established).
    const crds = ms.filter((m) => m.kind === "CustomResourceDefinition").map((m) => m.metadata.name);
    const expected = readdirSync(join(REPO_ROOT, "crds"))
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => f.replace(/^(.+?)_(.+)\.yaml$/, "$2.$1"));
    expect(crds.sort()).toEqual(expected.sort());
    expect(expected).toEqual(
      expect.arrayContaining([
        "apptokenrequests.apptoken.io",
        "appregistrations.apptoken.io",
        "clusterappregistrations.apptoken.io",
      ]),
    );
    const r = await kubectl(["apply", "-k", join(MANIFESTS, "operator"), "--dry-run=server"]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("the operator's args, read by its own config code, allow the in-cluster token service and no other host", async () => {
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "operator"));
    const args: string[] = (ms.find((m) => m.kind === "Deployment") as any).spec.template.spec.containers[0]
      .args;
    // The CA file exists only in the pod; everything else is parsed as the operator parses it.
    const config = loadConfig(
      args.filter((a) => !a.startsWith("--authority-ca-file")),
      {},
    );
    if (config === "help") throw new Error("--help in the Deployment's args");
    const allowedHosts = allowedHostSet(config.allowedAuthorityHosts);
    expect([...allowedHosts]).toEqual([`${TS_HOST}:443`]);
    const sample = await renderKustomization(kubectlPath(), join(MANIFESTS, "sample"));
    const registration = sample.find((m) => m.kind === "ClusterAppRegistration")!.spec as any;
    // What the controller checks before sending the credential: passes for the sample...
    expect(authorityBaseFor(registration, { allowInsecureLoopback: false, allowedHosts }).host).toBe(TS_HOST);
    // ...and the same registration without the authorityHost (Entra ID itself) would be refused.
    expect(() =>
      authorityBaseFor({ cloud: registration.cloud }, { allowInsecureLoopback: false, allowedHosts }),
    ).toThrow(/not in the operator's --allowed-authority-hosts/);
  });

  it("the sample: deploy/samples/cluster, pointed at the token service, which knows its credentials; the request in a selected namespace", async () => {
    const vars = scriptVars();
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "sample"));
    expect(ms.map((m) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`).sort()).toEqual([
      `AppTokenRequest/${vars.SAMPLE_NS}/${vars.SAMPLE_REQUEST}`,
      `ClusterAppRegistration//${vars.SAMPLE_REGISTRATION}`,
      `Namespace//${vars.SAMPLE_NS}`,
      "Secret/apptoken-system/tenant-tokens-credentials", // the operator's cluster resource namespace
    ]);
    const original = clusterSample();
    const find = (list: Manifest[], kind: string) => list.find((m) => m.kind === kind) as any;
    const registration = find(ms, "ClusterAppRegistration");
    const atr = find(ms, "AppTokenRequest");
    // Unchanged but for authorityHost and the request's namespace.
    expect(registration.spec).toEqual({
      ...find(original, "ClusterAppRegistration").spec,
      authorityHost: `https://${TS_HOST}`,
    });
    expect(atr.spec).toEqual(find(original, "AppTokenRequest").spec);
    expect(atr.spec.appRef).toEqual({ kind: "ClusterAppRegistration", name: vars.SAMPLE_REGISTRATION });
    expect(atr.spec.target.name).toBe(vars.SAMPLE_SECRET); // what hack/e2e-kind.sh checks
    // The registration serves the sample's namespace.
    const ns = find(ms, "Namespace");
    expect(
      selectorMatches(registration.spec.namespaceSelector as LabelSelector, ns.metadata.labels ?? {}),
    ).toBe(true);
    // The token service knows the tenant, the app and its secret.
    const config = JSON.parse(readFileSync(join(MANIFESTS, "token-service/config.json"), "utf8"));
    const tenant = config.tenants.find((t: { domains: string[] }) => t.domains.includes(atr.spec.tenantId));
    expect(tenant, `no tenant ${atr.spec.tenantId} in config.json`).toBeDefined();
    const app = config.apps.find((a: { clientId: string }) => a.clientId === registration.spec.clientId);
    expect(app?.tenantId).toBe(tenant.id);
    const ref = registration.spec.credential.clientSecret.secretRef;
    const secret = ms.find((m) => m.kind === "Secret" && m.metadata.name === ref.name) as any;
    expect(app.secrets).toContain(secret.stringData[ref.key]);
    expect(registration.spec.allowedTenants.some((t: string) => t === "*" || t === atr.spec.tenantId)).toBe(
      true,
    );
    expect(registration.spec.allowedScopes ?? [atr.spec.scope]).toContain(atr.spec.scope);
    const r = await kubectl(["apply", "-k", join(MANIFESTS, "sample"), "--dry-run=server"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `clusterappregistration.apptoken.io/${vars.SAMPLE_REGISTRATION} created (server dry run)`,
    );
    expect(r.stdout).toContain(`apptokenrequest.apptoken.io/${vars.SAMPLE_REQUEST} created (server dry run)`);
  });

  it("the refused sample: the same request from a namespace the registration does not select, nothing else", async () => {
    const vars = scriptVars();
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "refused"));
    expect(ms.map((m) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`).sort()).toEqual([
      `AppTokenRequest/${vars.REFUSED_NS}/${vars.SAMPLE_REQUEST}`,
      `Namespace//${vars.REFUSED_NS}`,
    ]);
    const sample = await renderKustomization(kubectlPath(), join(MANIFESTS, "sample"));
    const atr = ms.find((m) => m.kind === "AppTokenRequest")!;
    expect(atr.spec).toEqual(sample.find((m) => m.kind === "AppTokenRequest")!.spec);
    const selector = (sample.find((m) => m.kind === "ClusterAppRegistration")!.spec as any)
      .namespaceSelector as LabelSelector;
    const ns = ms.find((m) => m.kind === "Namespace")! as any;
    expect(selectorMatches(selector, ns.metadata.labels ?? {})).toBe(false);
    // The reason the script waits for is the one the controller gives.
    const checks = readFileSync(join(REPO_ROOT, "src/controller/registrations/app-ref-checks.ts"), "utf8");
    expect(checks).toContain('reason: "NamespaceNotAllowed"');
    expect(readFileSync(join(REPO_ROOT, "hack/e2e-kind.sh"), "utf8")).toContain("NamespaceNotAllowed");
    const r = await kubectl(["apply", "-k", join(MANIFESTS, "refused"), "--dry-run=server"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`apptokenrequest.apptoken.io/${vars.SAMPLE_REQUEST} created (server dry run)`);
  });

  it("e2e_wait_jsonpath waits for a field that does not exist yet, and times out with a message", async () => {
    const env = {
      ...process.env,
      PATH: `${binDir()}:${process.env.PATH ?? ""}`,
      KUBECONFIG: kubeconfigPath(),
    };
    const ns = "e2e-demo";
    const waiting = lib(`e2e_wait_jsonpath 30 ready -n ${ns} configmap late '{.data.state}'`, env);
    await new Promise((r) => setTimeout(r, 1500));
    await kubectl(["create", "configmap", "late", "-n", ns, "--from-literal=state=ready"]);
    const r = await waiting;
    expect(r.code, r.stderr).toBe(0);
    const timeout = await lib(`e2e_wait_jsonpath 2 ready -n ${ns} configmap never '{.data.state}'`, env);
    expect(timeout.code).toBe(1);
    expect(timeout.stderr).toContain("timed out after 2s");
    const gone = await lib(`e2e_wait_jsonpath 5 "" -n ${ns} configmap never '{.metadata.name}'`, env);
    expect(gone.code, gone.stderr).toBe(0);
  });

  it("the workflow runs make e2e-kind with kind installed", () => {
    const wf = readFileSync(join(REPO_ROOT, ".github/workflows/e2e-kind.yaml"), "utf8");
    expect(wf).toMatch(/runs-on: ubuntu-latest/);
    expect(wf).toMatch(/KIND_VERSION: v\d+\.\d+\.\d+/);
    expect(wf).toContain('go install "sigs.k8s.io/kind@${KIND_VERSION}"');
    expect(wf).toMatch(/make e2e-kind/);
  });
});
