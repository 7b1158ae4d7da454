/**
 * `make e2e-kind` cannot run here (no Docker engine), so everything it uses is checked piece by
 * piece: the scripts parse (and pass shellcheck when it is installed), the tool check says what is
 * missing, the certificates it issues name the Service and chain to the CA the operator is given,
 * the in-cluster token service entrypoint issues a token for deploy/samples/client-secret.yaml's
 * credentials over that TLS, the JWT check works, and every manifest it applies builds with
 * kustomize and passes the real apiserver's dry run.
 */
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
import { binDir, kubeconfigPath, kubectl, testKubeConfig } from "../support/kube.js";

const E2E = join(REPO_ROOT, "hack/e2e-kind");
const MANIFESTS = join(E2E, "manifests");
const TS_HOST = "token-service.apptoken-e2e.svc";

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

  it("the scripts pass shellcheck (Debian package shellcheck; .ci/run installs it)", async () => {
    const which = await run("bash", ["-c", "command -v shellcheck"]);
    expect(which.code, "shellcheck is not installed: apt-get install shellcheck").toBe(0);
    const r = await run("shellcheck", ["-x", "hack/e2e-kind.sh", "hack/e2e-kind/lib.sh", "hack/dev.sh"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
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

    // Every tool present but a Docker client without an engine (as on our machines).
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

  const sample = (): Manifest[] =>
    parseManifests(readFileSync(join(REPO_ROOT, "deploy/samples/client-secret.yaml"), "utf8"));

  /** POSTs the client-credentials form as the operator would, dialling 127.0.0.1 with the Service's name for TLS. */
  function tokenRequest(servername: string): Promise<{ status: number; body: any }> {
    const [secret, atr] = [
      sample().find((m) => m.kind === "Secret")!,
      sample().find((m) => m.kind === "AppTokenRequest")!,
    ];
    const spec = atr.spec as any;
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: spec.clientId,
      scope: spec.scope,
      client_secret: (secret.stringData as Record<string, string>)[
        spec.credential.clientSecret.secretRef.key
      ]!,
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

  it("serves TLS for https://token-service.apptoken-e2e.svc and issues a token for the sample's credentials", async () => {
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
  const ours = ["apptoken-e2e", "e2e-demo"]; // used by this file only
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

  it("the operator: deploy/ plus the CA, passes the dry run", async () => {
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "operator"));
    const pod = (ms.find((m) => m.kind === "Deployment") as any).spec.template.spec;
    expect(pod.containers[0].args).toContain("--authority-ca-file=/etc/apptoken/authority-ca/ca.pem");
    expect(pod.containers[0].volumeMounts).toContainEqual({
      name: "authority-ca",
      mountPath: "/etc/apptoken/authority-ca",
      readOnly: true,
    });
    expect(pod.volumes).toContainEqual({ name: "authority-ca", configMap: { name: "token-service-ca" } });
    expect(ms.some((m) => m.kind === "CustomResourceDefinition")).toBe(true);
    const r = await kubectl(["apply", "-k", join(MANIFESTS, "operator"), "--dry-run=server"]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("the sample: only deploy/samples/client-secret.yaml, pointed at the token service, which knows its credentials", async () => {
    const ms = await renderKustomization(kubectlPath(), join(MANIFESTS, "sample"));
    expect(ms.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      "AppTokenRequest/graph-client-secret",
      "Namespace/e2e-demo",
      "Secret/graph-app-credentials",
    ]);
    const atr = ms.find((m) => m.kind === "AppTokenRequest") as any;
    const original = parseManifests(
      readFileSync(join(REPO_ROOT, "deploy/samples/client-secret.yaml"), "utf8"),
    ).find((m) => m.kind === "AppTokenRequest") as any;
    expect(atr.spec).toEqual({ ...original.spec, authorityHost: `https://${TS_HOST}` });
    expect(atr.spec.target.name).toBe("graph-token"); // what hack/e2e-kind.sh checks
    const config = JSON.parse(readFileSync(join(MANIFESTS, "token-service/config.json"), "utf8"));
    expect(config.tenants[0].domains).toContain(atr.spec.tenantId);
    expect(config.apps[0].clientId).toBe(atr.spec.clientId);
    const r = await kubectl(["apply", "-k", join(MANIFESTS, "sample"), "--dry-run=server"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("apptokenrequest.apptoken.io/graph-client-secret created (server dry run)");
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
