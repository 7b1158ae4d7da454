/**
 * The shipped monitoring (deploy/components/monitoring): the alert rules pass `promtool check
 * rules` and their unit tests (`promtool test rules`, one file per alert), the PrometheusRule is the
 * rule file's content, the component builds with deploy/ and its ServiceMonitor selects the
 * metrics Service, and every metric named by an alert or a dashboard query is one that the real
 * operator exports on the real control plane: names come from parsing each expression with the
 * Prometheus project's PromQL grammar (VectorSelector nodes), not from matching text.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { parser } from "@prometheus-io/lezer-promql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { MONITORING_DIR, prometheusRuleYaml } from "../../hack/sync-monitoring.js";
import { eventually, kubectl } from "../support/kube.js";
import { Scenario } from "../support/scenario.js";

const run = promisify(execFile);
const ROOT = resolve(MONITORING_DIR, "../../..");

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
}
interface Dashboard {
  panels: { title: string; targets?: { expr: string }[] }[];
}

const rules = parse(readFileSync(join(MONITORING_DIR, "apptoken.rules.yaml"), "utf8")) as RuleFile;
const dashboard = JSON.parse(readFileSync(join(MONITORING_DIR, "dashboard.json"), "utf8")) as Dashboard;

/** Grafana's interval variables are not PromQL: a fixed range stands in for them. */
function promql(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "5m")
    .replaceAll("$__interval", "1m")
    .replaceAll("$__range", "1h");
}

/** The metric names an expression selects, from its syntax tree; throws on a syntax error. */
export function selectedMetrics(expr: string): string[] {
  const text = promql(expr);
  const names: string[] = [];
  parser.parse(text).iterate({
    enter: (node) => {
      if (node.type.isError) throw new Error(`PromQL syntax error at ${node.from} in: ${text}`);
      if (node.name !== "VectorSelector") return;
      const id = node.node.getChild("Identifier");
      if (id) {
        names.push(text.slice(id.from, id.to));
        return;
      }
      // {__name__="..."}: the name is a label matcher.
      const m = /__name__\s*=\s*"([^"]+)"/.exec(text.slice(node.from, node.to));
      if (!m) throw new Error(`a selector without a metric name in: ${text}`);
      names.push(m[1]!);
    },
  });
  return names;
}

const alertExprs = rules.groups.flatMap((g) =>
  g.rules.map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: r.expr })),
);
const dashboardExprs = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })),
);

async function promtool(): Promise<string> {
  const { stdout } = await run("bash", [join(ROOT, "hack/tools.sh"), "promtool"], { timeout: 900_000 });
  return stdout.trim();
}

describe("shipped monitoring: rules, tests, component", () => {
  it("passes promtool check rules", async () => {
    const { stdout } = await run(await promtool(), [
      "check",
      "rules",
      join(MONITORING_DIR, "apptoken.rules.yaml"),
    ]);
    expect(stdout).toContain(`SUCCESS: ${alertExprs.length} rules found`);
  }, 900_000);

  it("passes promtool test rules, with a test file for every alert", async () => {
    const tests = readdirSync(join(MONITORING_DIR, "tests")).filter((f) => f.endsWith(".yaml"));
    const tested = new Set(
      tests.flatMap((f) => {
        const t = parse(readFileSync(join(MONITORING_DIR, "tests", f), "utf8")) as {
          tests: { alert_rule_test?: { alertname: string }[] }[];
        };
        return t.tests.flatMap((x) => (x.alert_rule_test ?? []).map((a) => a.alertname));
      }),
    );
    for (const { where } of alertExprs) expect(tested, where).toContain(where.replace(/^alert /, ""));
    const { stdout } = await run(await promtool(), [
      "test",
      "rules",
      ...tests.map((f) => join(MONITORING_DIR, "tests", f)),
    ]);
    expect(stdout.match(/SUCCESS/g)?.length).toBe(tests.length);
  }, 900_000);

  it("wraps the rule file unchanged in the PrometheusRule (hack/sync-monitoring.ts)", () => {
    expect(readFileSync(join(MONITORING_DIR, "prometheusrule.yaml"), "utf8")).toBe(prometheusRuleYaml());
  });

  it("builds as a kustomize Component of deploy/, its ServiceMonitor selecting the metrics Service", async () => {
    // Outside deploy/ (kustomize refuses a root inside another it loads), so loads are unrestricted.
    const dir = mkdtempSync(join(tmpdir(), "apptoken-monitoring-"));
    try {
      const from = (p: string) => relative(dir, join(ROOT, p));
      writeFileSync(
        join(dir, "kustomization.yaml"),
        `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${from("deploy")}]\ncomponents: [${from("deploy/components/monitoring")}]\n`,
      );
      const r = await kubectl(["kustomize", "--load-restrictor=LoadRestrictionsNone", dir]);
      expect(r.code, r.stderr).toBe(0);
      const objects = parseAllDocuments(r.stdout).map(
        (d) =>
          d.toJS() as {
            kind: string;
            metadata: { name: string; namespace?: string; labels?: Record<string, string> };
            spec: Record<string, unknown>;
          },
      );
      const monitor = objects.find((o) => o.kind === "ServiceMonitor")!;
      const service = objects.find(
        (o) => o.kind === "Service" && o.metadata.name === "apptoken-operator-metrics",
      )!;
      expect(monitor.metadata.namespace).toBe(service.metadata.namespace);
      const selector = (monitor.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
      for (const [k, v] of Object.entries(selector)) expect(service.metadata.labels?.[k], k).toBe(v);
      const ports = (service.spec.ports as { name: string }[]).map((p) => p.name);
      for (const e of monitor.spec.endpoints as { port: string }[]) expect(ports).toContain(e.port);
      expect(objects.find((o) => o.kind === "PrometheusRule")?.spec).toEqual(rules);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads metric names from PromQL's syntax tree", () => {
    expect(
      selectedMetrics(
        'sum by (le) (rate(a_bucket{x="y"}[$__rate_interval])) / on() group_left max(b) and {__name__="c"}',
      ),
    ).toEqual(["a_bucket", "b", "c"]);
    expect(() => selectedMetrics("sum(rate(a[5m])")).toThrow(/syntax error/);
  });
});

describe("shipped monitoring: every metric it names is exported by the running operator", () => {
  const s = new Scenario({ prefix: "monitoring", operator: false });

  beforeAll(async () => {
    await s.start();
    await s.startOperator({ args: ["--per-request-metrics"] });
  }, 180_000);

  afterAll(async () => {
    await s.stop();
  });

  it("exports each metric named in the alerts and the dashboard", async () => {
    await s.createRequest("watched", s.spec("certificate"));
    await s.waitFor("watched", "True");
    // A scrape once the certificate registration's expiry is exported too.
    const text = await eventually(async () => {
      const t = await s.operator!.metrics();
      return t.includes("apptoken_credential_expiration_timestamp_seconds{") ? t : undefined;
    }, "the credential expiry series");
    const exported = new Set(
      text
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#"))
        .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]),
    );
    // `up` is Prometheus's own, for the scrape itself.
    exported.add("up");
    const named = [...alertExprs, ...dashboardExprs].flatMap(({ where, expr }) =>
      selectedMetrics(expr).map((metric) => ({ where, metric })),
    );
    expect(named.length).toBeGreaterThan(30);
    const missing = named.filter((n) => !exported.has(n.metric));
    expect(missing).toEqual([]);
    // The opt-in series are there for the request, by namespace and name.
    expect(await s.operator!.metric("apptoken_request_ready", { namespace: s.ns, name: "watched" })).toBe(1);
    expect(
      await s.operator!.metric("apptoken_token_expiration_timestamp_seconds", {
        namespace: s.ns,
        name: "watched",
      }),
    ).toBeGreaterThan(Date.now() / 1000);
    // Deleted: its series go with it.
    await s.deleteRequest("watched");
    await eventually(
      async () => (!(await s.operator!.metrics()).includes(`name="watched"`) ? true : undefined),
      "the deleted request's series removed",
    );
  });
});
