/**
 * Writes deploy/components/monitoring/prometheusrule.yaml from apptoken.rules.yaml, the plain
 * Prometheus rule file that promtool tests and the Helm chart reads: the PrometheusRule's spec is
 * that file's content, so there is one copy of the alerts to edit. A test fails when it is stale.
 *
 * Usage: node --import tsx hack/sync-monitoring.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";

export const MONITORING_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../deploy/components/monitoring",
);

/** The PrometheusRule that wraps the rule file, as YAML text. */
export function prometheusRuleYaml(): string {
  const rules = parse(readFileSync(join(MONITORING_DIR, "apptoken.rules.yaml"), "utf8")) as unknown;
  const object = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "apptoken-operator", namespace: "apptoken-system" },
    spec: rules,
  };
  return `# Generated from apptoken.rules.yaml by hack/sync-monitoring.ts: edit that file, then run it.\n${stringify(object, { lineWidth: 0 })}`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(join(MONITORING_DIR, "prometheusrule.yaml"), prometheusRuleYaml());
}
