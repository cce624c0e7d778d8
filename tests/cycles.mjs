// Lists the import cycles among the modules under the folders given (default:
// src/), type-only imports included: a lower layer never imports a higher one.
// Run `node tests/cycles.mjs [folder ...]`; it prints each cycle and exits 1 if
// there is any. The gate runs it on src/.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Every relative specifier a module imports or re-exports: `import ... from`,
 * `import type ... from`, `export ... from`, a bare `import "..."`. Dynamic
 * `import()` of a package is not a module of ours and is left out.
 *
 * @param {string} source
 * @returns {string[]}
 */
export function importsOf(source) {
  const specifiers = [];
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const pattern =
    /(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?["'](\.[^"']+)["']/g;
  for (const match of code.matchAll(pattern)) specifiers.push(match[1]);
  return specifiers;
}

/**
 * The import graph of the `.ts` and `.js` files under `folders`: file (a path
 * relative to `root`) to the files it imports that are in the graph too.
 *
 * @param {string} root
 * @param {string[]} folders
 * @returns {Map<string, string[]>}
 */
export function importGraph(root, folders) {
  const files = folders.flatMap((folder) =>
    readdirSync(join(root, folder), { recursive: true })
      .filter((file) => /\.(ts|js|mjs)$/.test(file))
      .map((file) => join(folder, file))
  );
  const known = new Set(files);
  const graph = new Map();
  for (const file of files.sort()) {
    const source = readFileSync(join(root, file), "utf8");
    const targets = importsOf(source)
      .map((specifier) =>
        relative(root, resolve(root, dirname(file), specifier))
      )
      .filter((target) => known.has(target));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/**
 * The cycles of a graph: each strongly connected component with more than one
 * file (or a file that imports itself), as the list of its files.
 *
 * @param {Map<string, string[]>} graph
 * @returns {string[][]}
 */
export function cycles(graph) {
  // Tarjan's algorithm.
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (file) => {
    index.set(file, next);
    low.set(file, next++);
    stack.push(file);
    onStack.add(file);
    for (const target of graph.get(file) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file), low.get(target)));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file), index.get(target)));
      }
    }
    if (low.get(file) === index.get(file)) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1 || (graph.get(file) ?? []).includes(file)) {
        found.push(component.reverse());
      }
    }
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const folders = process.argv.slice(2);
  const graph = importGraph(root, folders.length > 0 ? folders : ["src"]);
  const found = cycles(graph);
  for (const cycle of found) {
    console.log(`cycle among: ${cycle.join(", ")}`);
  }
  console.log(
    `${graph.size} modules, ${found.length} import cycle(s)`,
  );
  process.exit(found.length > 0 ? 1 : 0);
}
