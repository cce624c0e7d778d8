// The demo server under load and under attack, on Deno and on Bun: many
// valid uploads at once, a flood of crafted images, uploads over the
// admission limit, a client that goes away mid-upload, and image work that
// must stop (cancelled, timed out, its process killed). Every flood is
// bounded in count, on 127.0.0.1, and every server is killed in `finally`.

import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { test } from "../_harness.ts";
import { hugeDeclaredJpeg, progressiveJpeg } from "./fixtures/crafted.ts";
import {
  type DemoServer,
  gradient,
  photoForm,
  poll,
  removeDir,
  request,
  type Runtime,
  RUNTIMES,
  startDemo,
  tempDir,
} from "./fixtures/server.ts";

async function withDemo(
  runtime: Runtime,
  env: Record<string, string>,
  fn: (server: DemoServer) => Promise<void>,
): Promise<void> {
  const dataDir = await tempDir();
  let server: DemoServer | undefined;
  try {
    server = await startDemo(runtime, dataDir, env);
    await fn(server);
  } finally {
    await server?.kill();
    await removeDir(dataDir);
  }
}

function post(
  server: DemoServer,
  bytes: Uint8Array,
  name: string,
): Promise<Response> {
  return request(`${server.url}/photos`, {
    method: "POST",
    body: photoForm(bytes, name, "image/jpeg"),
  }, 30_000);
}

async function tasks(server: DemoServer): Promise<{
  active: { id: string; name: string }[];
  uploadsInFlight: number;
  imageProcesses: { pid: number; busy: boolean }[];
  failures: { name: string; error: string }[];
}> {
  return await (await request(`${server.url}/tasks`)).json();
}

async function photo(
  server: DemoServer,
  id: string,
): Promise<Record<string, unknown>> {
  return await (await request(`${server.url}/photos/${id}`)).json();
}

/** Whether a process with this pid still exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until an image process runs a job; returns its pid. */
async function busyProcess(server: DemoServer): Promise<number> {
  return await poll("an image process to run a job", async () => {
    const busy = (await tasks(server)).imageProcesses.find((p) => p.busy);
    return busy?.pid;
  });
}

/** A 12 MP progressive JPEG in 100 scans, a few KB: 24,000,000 units, the default budget. */
const slow = progressiveJpeg({ width: 4000, height: 3000, scans: 100 });

for (const runtime of RUNTIMES) {
  test(`100 concurrent valid uploads all end ready, the client waiting out each 503's Retry-After (${runtime})`, async () => {
    // Small photos keep the test within Bun's 30 s; bench/demo_upload.ts
    // does the same with 100 photos of 2.2 MB.
    const { jpeg } = await gradient(320, 240);
    await withDemo(runtime, {}, async (server) => {
      let refused = 0;
      const ids = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          for (let tries = 0; tries < 20; tries++) {
            const response = await post(server, jpeg, `p${i}.jpg`);
            const body = await response.json();
            if (response.status === 503) {
              refused++;
              const wait = Number(response.headers.get("retry-after"));
              assert.ok(wait >= 1, `Retry-After ${wait}`);
              await new Promise((resolve) => setTimeout(resolve, wait * 1000));
              continue;
            }
            assert.equal(response.status, 201, JSON.stringify(body));
            return body.photoId as string;
          }
          throw new Error(`upload ${i} was refused 20 times`);
        }),
      );
      assert.equal(new Set(ids).size, 100);
      const statuses = await poll("100 photos to be done", async () => {
        const list = await Promise.all(ids.map((id) => photo(server, id)));
        return list.every((p) => p.status !== "processing") && list;
      }, 280);
      const failed = statuses.filter((p) => p.status !== "ready");
      assert.deepEqual(failed, [], "every photo ends ready");
      console.log(
        `${runtime}: 100 uploads ready; ${refused} answer(s) 503 on the way`,
      );
    });
  });

  test(`a flood of crafted images is refused before any decode and does not delay a valid upload (${runtime})`, async () => {
    const { jpeg } = await gradient(640, 480);
    const crafted = [
      ...Array.from(
        { length: 10 },
        () => progressiveJpeg({ width: 2000, height: 1500, scans: 1000 }),
      ),
      ...Array.from({ length: 10 }, () => hugeDeclaredJpeg(7000, 7000)),
      ...Array.from(
        { length: 10 },
        () => progressiveJpeg({ width: 6000, height: 4000, scans: 60 }),
      ),
    ];
    await withDemo(runtime, {}, async (server) => {
      const [valid, ...flood] = await Promise.all([
        post(server, jpeg, "valid.jpg"),
        ...crafted.map((bytes, i) => post(server, bytes, `crafted-${i}.jpg`)),
      ]);
      for (const response of flood) {
        const body = await response.json();
        assert.equal(response.status, 422, JSON.stringify(body));
        assert.match(
          body.error,
          /more than 100 scans|cannot hold the 7000x7000|units of decode work/,
        );
      }
      const { photoId } = await valid.json();
      assert.equal(valid.status, 201);
      await poll("the valid photo to be ready", async () => {
        const body = await photo(server, photoId);
        if (body.status === "failed") throw new Error(String(body.error));
        return body.status === "ready";
      });
      // Nothing of the flood was stored or reached an image process.
      assert.deepEqual(await readdir(join(server.dataDir, "photos")), [
        photoId,
      ]);
      assert.deepEqual((await tasks(server)).failures, []);
    });
  });

  test(`at most MAX_UPLOADS uploads are received at once; the next gets 503 with Retry-After (${runtime})`, async () => {
    const { jpeg } = await gradient(320, 240);
    await withDemo(runtime, { MAX_UPLOADS: "2" }, async (server) => {
      const form = new Response(photoForm(jpeg, "a.jpg", "image/jpeg"));
      const type = form.headers.get("content-type")!;
      const bytes = new Uint8Array(await form.arrayBuffer());
      const rest = Promise.withResolvers<void>();
      const held = Array.from(
        { length: 2 },
        () =>
          request(`${server.url}/photos`, {
            method: "POST",
            headers: { "content-type": type },
            body: new ReadableStream<Uint8Array>({
              async start(controller) {
                controller.enqueue(bytes.slice(0, 100));
                await rest.promise;
                controller.enqueue(bytes.slice(100));
                controller.close();
              },
            }),
            duplex: "half",
          } as RequestInit),
      );
      try {
        await poll(
          "two uploads in flight",
          async () => (await tasks(server)).uploadsInFlight === 2,
        );
        const refused = await post(server, jpeg, "third.jpg");
        const body = await refused.json();
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.get("retry-after"), "1");
        assert.match(
          body.error,
          /receiving 2 uploads already; try again in 1 s/,
        );
      } finally {
        rest.resolve();
      }
      for (const response of await Promise.all(held)) {
        assert.equal(response.status, 201);
      }
      assert.equal((await post(server, jpeg, "fourth.jpg")).status, 201);
    });
  });

  test(`a client that goes away mid-upload is not logged as a server error and leaves no file (${runtime})`, async () => {
    const { jpeg } = await gradient(320, 240);
    await withDemo(runtime, {}, async (server) => {
      const form = new Response(photoForm(jpeg, "a.jpg", "image/jpeg"));
      const type = form.headers.get("content-type")!;
      const bytes = new Uint8Array(await form.arrayBuffer());
      const controller = new AbortController();
      const never = Promise.withResolvers<void>();
      const upload = fetch(`${server.url}/photos`, {
        method: "POST",
        headers: { "content-type": type },
        body: new ReadableStream<Uint8Array>({
          async start(stream) {
            stream.enqueue(bytes.slice(0, 1000));
            await never.promise;
            stream.close();
          },
        }),
        duplex: "half",
        signal: controller.signal,
      } as RequestInit);
      try {
        await poll(
          "the upload to be in flight",
          async () => (await tasks(server)).uploadsInFlight === 1,
        );
        controller.abort();
        await upload.catch(() => {});
        await poll(
          "the upload to end",
          async () => (await tasks(server)).uploadsInFlight === 0,
        );
      } finally {
        never.resolve();
        await upload.catch(() => {});
      }
      assert.deepEqual(await readdir(join(server.dataDir, "photos")), []);
      assert.doesNotMatch(server.output(), /failed|error|Error/);
    });
  });

  test(`cancelling a running thumbnail kills its image process at once, and the photo fails as cancelled (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const { photoId } = await (await post(server, slow, "slow.jpg")).json();
      const pid = await busyProcess(server);
      const running = (await tasks(server)).active.find((t) =>
        t.name === `thumbnail 600px ${photoId}`
      );
      assert.ok(running, "the 600 px thumbnail runs");
      const cancelled = await request(`${server.url}/tasks/${running.id}`, {
        method: "DELETE",
      });
      assert.equal(cancelled.status, 202);
      // Gone within a second: SIGKILL, not a terminate() the decode ignores.
      await poll(
        `image process ${pid} to be gone`,
        () => Promise.resolve(!alive(pid)),
        10,
      );
      const body = await poll("the photo to fail", async () => {
        const body = await photo(server, photoId);
        return body.status === "failed" && body;
      });
      assert.match(String(body.error), /thumbnail 600px .* was cancelled/);
      assert.equal(
        (await tasks(server)).imageProcesses.filter((p) => p.busy).length,
        0,
      );
    });
  });

  test(`an image process killed mid-job is a transient failure: the photo is tried again and ends ready (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const { photoId } = await (await post(server, slow, "slow.jpg")).json();
      const pid = await busyProcess(server);
      process.kill(pid, "SIGKILL");
      const body = await poll("the photo to be ready", async () => {
        const body = await photo(server, photoId);
        if (body.status === "failed") throw new Error(String(body.error));
        return body.status === "ready" && body;
      }, 250);
      assert.equal(body.attempts, 2);
      assert.match(
        server.output(),
        /try 1 of 3 failed, trying again: .*image process \d+ ended \(killed by SIGKILL\)/,
      );
    });
  });

  test(`a thumbnail that runs out its timeout has its process killed; after 3 tries the photo fails (${runtime})`, async () => {
    await withDemo(runtime, { IMAGE_TIMEOUT_MS: "300" }, async (server) => {
      const { photoId } = await (await post(server, slow, "slow.jpg")).json();
      const pids = new Set<number>();
      const body = await poll("the photo to fail", async () => {
        for (const p of (await tasks(server)).imageProcesses) pids.add(p.pid);
        const body = await photo(server, photoId);
        return body.status === "failed" && body;
      }, 200);
      assert.equal(body.attempts, 3);
      assert.match(
        String(body.error),
        /thumbnail 600px .*: .*(timed out|TimeoutError)/i,
      );
      assert.ok(pids.size > 0);
      await poll(
        "every timed-out process to be gone",
        () => Promise.resolve([...pids].every((pid) => !alive(pid))),
        10,
      );
    });
  });
}
