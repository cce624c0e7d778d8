// The import-cycle check the gate runs on src/ (tests/cycles.mjs): it finds
// cycles through type-only imports and re-exports, and src/ has none.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { cycles, importGraph, importsOf } from "../cycles.mjs";
import { test } from "../_harness.ts";

test("importsOf() finds imports, type imports, re-exports and bare imports", () => {
  const source = [
    '// import { x } from "./commented.ts";',
    'import { a, type B } from "./a.ts";',
    'import type {\n  C,\n  D,\n} from "../c.ts";',
    'export { e } from "./e.ts";',
    'export * from "./f.ts";',
    'import "./g.js";',
    'import fc from "fast-check";',
    'const lazy = import("bullmq");',
    "/* import { h } from './h.ts'; */",
  ].join("\n");
  assert.deepEqual(importsOf(source), [
    "./a.ts",
    "../c.ts",
    "./e.ts",
    "./f.ts",
    "./g.js",
  ]);
});

test("cycles() finds each cycle, a self-import included, and none in a tree", () => {
  const graph = new Map([
    ["a", ["b"]],
    ["b", ["c"]],
    ["c", ["a", "d"]],
    ["d", []],
    ["e", ["e"]],
    ["f", ["d"]],
  ]);
  assert.deepEqual(
    cycles(graph).map((cycle) => [...cycle].sort()),
    [["a", "b", "c"], ["e"]],
  );
  assert.deepEqual(cycles(new Map([["x", ["y"]], ["y", []]])), []);
});

test("src/ and examples/ have no import cycle", () => {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const graph = importGraph(root, ["src", "examples"]);
  assert.ok(graph.size > 10, `only ${graph.size} modules found under src/`);
  assert.deepEqual(cycles(graph), []);
});
