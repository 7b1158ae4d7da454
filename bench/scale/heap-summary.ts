/**
 * Where a heap snapshot's bytes are, without DevTools: self size grouped by node type and
 * constructor, and plain objects further grouped by their property names (so "an informer's stored
 * request" and "a status condition" show up as separate rows). Pass two snapshots (small N, large N)
 * to see what grows per request.
 *
 *   node --import tsx bench/scale/heap-summary.ts small.heapsnapshot [large.heapsnapshot PER]
 *
 * With two files, rows are sorted by growth and divided by PER (e.g. the difference in N), giving
 * bytes per request.
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

type Groups = Map<string, { count: number; bytes: number }>;

export function summarize(file: string): Groups {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const { node_fields: nf, node_types: nt, edge_fields: ef, edge_types: et } = snap.snapshot.meta;
  const NF = nf.length;
  const EF = ef.length;
  const typeOf = nt[0];
  const edgeTypeOf = et[0];
  const iType = nf.indexOf("type");
  const iName = nf.indexOf("name");
  const iSize = nf.indexOf("self_size");
  const iEdges = nf.indexOf("edge_count");
  const eType = ef.indexOf("type");
  const eName = ef.indexOf("name_or_index");
  const groups: Groups = new Map();
  const { nodes, edges, strings } = snap;
  let edge = 0;
  for (let n = 0; n < nodes.length; n += NF) {
    const type = typeOf[nodes[n + iType]!]!;
    const name = strings[nodes[n + iName]!]!;
    const size = nodes[n + iSize]!;
    const edgeCount = nodes[n + iEdges]!;
    let key: string;
    if (type === "object" && name === "Object") {
      const props: string[] = [];
      for (let e = edge; e < edge + edgeCount * EF; e += EF) {
        if (edgeTypeOf[edges[e + eType]!] === "property") props.push(strings[edges[e + eName]!]!);
      }
      key = `Object {${props.slice(0, 8).join(",")}${props.length > 8 ? ",…" : ""}}`;
    } else if (type === "string" || type === "concatenated string" || type === "sliced string") {
      key = `string ${/^[a-z0-9-]+\/[a-z0-9-]+$/.test(name) ? "(ns/name key)" : name.length > 40 ? `(len ${Math.round(name.length / 50) * 50})` : JSON.stringify(name.slice(0, 24)).replace(/[0-9]/g, "9")}`;
    } else {
      key = `${type} ${name.length > 60 ? name.slice(0, 60) + "…" : name}`;
    }
    edge += edgeCount * EF;
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    groups.set(key, g);
  }
  return groups;
}

function main(): void {
  const [a, b, perArg] = process.argv.slice(2);
  if (!a) throw new Error("usage: heap-summary.ts SNAPSHOT [SNAPSHOT2 PER]");
  const ga = summarize(a);
  let totalA = 0;
  for (const g of ga.values()) totalA += g.bytes;
  if (!b) {
    const rows = [...ga].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, 40);
    console.log(`total self size ${(totalA / 2 ** 20).toFixed(1)} MiB`);
    for (const [k, g] of rows)
      console.log(`${(g.bytes / 1024).toFixed(0).padStart(9)} KiB ${String(g.count).padStart(8)}  ${k}`);
    return;
  }
  const per = Number(perArg ?? 1);
  const gb = summarize(b);
  let totalB = 0;
  for (const g of gb.values()) totalB += g.bytes;
  const rows = [...gb]
    .map(([k, g]) => {
      const o = ga.get(k) ?? { count: 0, bytes: 0 };
      return [k, (g.bytes - o.bytes) / per, (g.count - o.count) / per] as const;
    })
    .sort((x, y) => y[1] - x[1])
    .slice(0, 45);
  console.log(`growth ${((totalB - totalA) / per).toFixed(0)} B per unit (${per} units)`);
  for (const [k, bytes, count] of rows)
    console.log(`${bytes.toFixed(1).padStart(9)} B ${count.toFixed(2).padStart(7)}×  ${k}`);
}

if (process.argv[1]?.endsWith("heap-summary.ts")) main();
