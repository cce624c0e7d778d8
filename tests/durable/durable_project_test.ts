// RedisBackend used from another project, as a user has it: the library's
// files in one temporary folder (with no node_modules anywhere above them),
// the application in another, with its own package.json, node_modules (a
// link to this repository's) and, for Deno, deno.json import map. bullmq and
// ioredis can then come only from the application's project. Run by the
// runtime that runs the test; each test starts its own redis-server (and
// fails, saying how to install it, where there is none).

import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Child } from "./fixtures/_process.ts";
import { type RedisServer, startRedis } from "./fixtures/_redis.ts";
import { test } from "../_harness.ts";

const root = new URL("../../", import.meta.url);

/** The library alone, and an application project beside it. */
interface Layout {
  /** The library's mod.ts for durable, as a file URL. */
  library: string;
  /** The application's folder. */
  app: string;
}

/** A test with a Redis server and the two folders; `withModules` links node_modules. */
function projectTest(
  name: string,
  withModules: boolean,
  fn: (server: RedisServer, layout: Layout) => Promise<void>,
): void {
  test(name, async () => {
    const folder = await mkdtemp(join(tmpdir(), "durable-project-"));
    const server = await startRedis();
    try {
      const lib = join(folder, "lib");
      const app = join(folder, "app");
      await mkdir(lib);
      await mkdir(app);
      await cp(new URL("mod.ts", root), join(lib, "mod.ts"));
      await cp(new URL("src", root), join(lib, "src"), { recursive: true });
      await writeFile(join(lib, "package.json"), '{ "type": "module" }\n');
      await cp(
        new URL("./fixtures/project_app.ts", import.meta.url),
        join(app, "app.ts"),
      );
      await writeFile(
        join(app, "package.json"),
        JSON.stringify({
          type: "module",
          dependencies: { bullmq: "^6.7.0", ioredis: "^5.11.1" },
        }),
      );
      await writeFile(
        join(app, "deno.json"),
        JSON.stringify({
          imports: {
            bullmq: "npm:bullmq@^6.7.0",
            ioredis: "npm:ioredis@^5.11.1",
          },
          nodeModulesDir: "manual",
        }),
      );
      if (withModules) {
        await symlink(
          new URL("node_modules", root).pathname,
          join(app, "node_modules"),
        );
      }
      await fn(server, {
        library: pathToFileURL(join(lib, "src", "durable", "mod.ts")).href,
        app,
      });
    } finally {
      await server.stop();
      await rm(folder, { recursive: true, force: true });
    }
  });
}

projectTest(
  "RedisBackend loads bullmq and ioredis from the application's project, not the library's folder",
  true,
  async (server, { library, app }) => {
    const child = new Child(join(app, "app.ts"), [library, server.url], {
      cwd: app,
    });
    try {
      const event = await child.waitFor({}, 30_000);
      assert.deepEqual(event, { event: "done" }, child.output.join("\n"));
      await child.exit();
    } finally {
      await child.stop();
    }
  },
);

projectTest(
  "RedisBackend.open() says how to install bullmq and ioredis when the project lacks them",
  false,
  async (server, { library, app }) => {
    const child = new Child(join(app, "app.ts"), [library, server.url], {
      cwd: app,
    });
    try {
      const event = await child.waitFor({}, 30_000);
      assert.equal(event.event, "error", child.output.join("\n"));
      assert.match(
        event.message as string,
        /RedisBackend needs the packages bullmq and ioredis, which the application installs \(Bun, Node: npm install bullmq ioredis; Deno: deno add npm:bullmq npm:ioredis\)/,
      );
      await child.exit();
    } finally {
      await child.stop();
    }
  },
);
