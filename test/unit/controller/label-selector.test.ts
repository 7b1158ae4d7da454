import { describe, expect, it } from "vitest";
import type { LabelSelector } from "../../../src/api/types.js";
import { selectorMatches } from "../../../src/controller/registrations/label-selector.js";

const TEAM_PAYMENTS = { team: "payments", env: "prod" };

describe("selectorMatches (metav1.LabelSelector)", () => {
  it.each([
    ["no labels", {}],
    ["some labels", TEAM_PAYMENTS],
  ])("selects every namespace with the empty selector {}, one with %s included", (_what, labels) => {
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: {}, matchExpressions: [] }, labels)).toBe(true);
  });

  it("treats labels it was not given as no labels", () => {
    expect(selectorMatches({})).toBe(true);
    expect(selectorMatches({ matchLabels: { team: "payments" } })).toBe(false);
  });

  it.each<[string, Record<string, string>, boolean]>([
    ["every pair present and equal", { team: "payments" }, true],
    ["all pairs present and equal", { team: "payments", env: "prod" }, true],
    ["a value that differs", { team: "billing" }, false],
    ["a value that differs only in case", { team: "Payments" }, false],
    ["a key that is absent", { tier: "gold" }, false],
    ["one of two pairs unmet", { team: "payments", env: "dev" }, false],
  ])("matchLabels: %s -> %s", (_what, matchLabels, expected) => {
    expect(selectorMatches({ matchLabels }, TEAM_PAYMENTS)).toBe(expected);
  });

  it.each<[LabelSelector["matchExpressions"], Record<string, string>, boolean]>([
    [[{ key: "team", operator: "In", values: ["payments", "billing"] }], TEAM_PAYMENTS, true],
    [[{ key: "team", operator: "In", values: ["billing"] }], TEAM_PAYMENTS, false],
    [[{ key: "team", operator: "In", values: ["payments"] }], {}, false],
    [[{ key: "team", operator: "In", values: [] }], TEAM_PAYMENTS, false],
    [[{ key: "team", operator: "NotIn", values: ["billing"] }], TEAM_PAYMENTS, true],
    [[{ key: "team", operator: "NotIn", values: ["payments"] }], TEAM_PAYMENTS, false],
    // As in Kubernetes: a namespace without the key is not in any set of its values.
    [[{ key: "team", operator: "NotIn", values: ["payments"] }], {}, true],
    [[{ key: "team", operator: "Exists" }], TEAM_PAYMENTS, true],
    [[{ key: "team", operator: "Exists" }], { env: "prod" }, false],
    [[{ key: "team", operator: "Exists" }], { team: "" }, true],
    [[{ key: "quarantined", operator: "DoesNotExist" }], TEAM_PAYMENTS, true],
    [[{ key: "team", operator: "DoesNotExist" }], TEAM_PAYMENTS, false],
  ])("matchExpressions %j against %j -> %s", (matchExpressions, labels, expected) => {
    expect(selectorMatches({ matchExpressions }, labels)).toBe(expected);
  });

  it("requires matchLabels and every expression to hold together", () => {
    const selector: LabelSelector = {
      matchLabels: { env: "prod" },
      matchExpressions: [
        { key: "team", operator: "In", values: ["payments"] },
        { key: "quarantined", operator: "DoesNotExist" },
      ],
    };
    expect(selectorMatches(selector, TEAM_PAYMENTS)).toBe(true);
    expect(selectorMatches(selector, { ...TEAM_PAYMENTS, env: "dev" })).toBe(false);
    expect(selectorMatches(selector, { ...TEAM_PAYMENTS, team: "billing" })).toBe(false);
    expect(selectorMatches(selector, { ...TEAM_PAYMENTS, quarantined: "true" })).toBe(false);
  });

  it.each(["in", "Equals", "Gt", ""])(
    "selects nothing with the unknown operator %j, so a malformed selector can only narrow",
    (operator) => {
      const selector = {
        matchExpressions: [{ key: "team", operator, values: ["payments"] }],
      } as unknown as LabelSelector;
      expect(selectorMatches(selector, TEAM_PAYMENTS)).toBe(false);
      expect(selectorMatches(selector, {})).toBe(false);
    },
  );

  it.each(["constructor", "toString", "__proto__", "hasOwnProperty"])(
    "does not mistake the Object.prototype member %j for a label",
    (key) => {
      expect(selectorMatches({ matchExpressions: [{ key, operator: "Exists" }] }, {})).toBe(false);
      expect(selectorMatches({ matchExpressions: [{ key, operator: "DoesNotExist" }] }, {})).toBe(true);
      expect(selectorMatches({ matchLabels: { [key]: "x" } }, {})).toBe(false);
    },
  );
});
