// The README's handlers for edge hosts are quoted from files that the gate
// type-checks and the edge test runs: keep the quotes and the files the same.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "../_harness.ts";

const root = new URL("../../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");

for (
  const file of [
    "examples/edge/cloudflare_worker.ts",
    "examples/edge/vercel_function.ts",
    "examples/edge/supabase_function.ts",
    "examples/edge/deno_deploy.ts",
  ]
) {
  test(`README quotes ${file} verbatim`, () => {
    // The quote starts at the imports, after the file's own header comment.
    const text = readFileSync(new URL(file, root), "utf8");
    const source = text.slice(text.indexOf("import ")).trim();
    assert.ok(
      readme.includes("```ts\n" + source + "\n```"),
      `README.md no longer quotes ${file} as it is; copy the file into its section again`,
    );
  });
}
