import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        // Real HTTPS servers on loopback (local token service, oidc-provider), no Kubernetes.
        test: {
          name: "service",
          include: ["test/service/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/property/**/*.test.ts"],
          environment: "node",
          // One real kube-apiserver + etcd for every integration file (see hack/control-plane/).
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Two cores: files run in parallel against the shared control plane, isolated by namespace.
          maxConcurrency: 4,
        },
      },
      {
        // Faults, HA failover, load and leak scans against real processes (make test-chaos).
        test: {
          name: "chaos",
          include: ["test/chaos/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 180_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
