// The demo's order store in process: the confirmation task's "sent" marks
// are group-committed (one transaction for the marks made close together).

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import {
  type OrderDeps,
  orderRoutes,
  OrderStore,
  validateOrder,
} from "../../examples/demo/orders.ts";
import { test } from "../_harness.ts";
import { removeDir, tempDir } from "./fixtures/server.ts";

const ITEMS = [{ sku: "MUG-1", quantity: 1 }];

/** Runs `fn` with a store on a fresh database file; closes and removes both. */
async function withStore(
  fn: (store: OrderStore, path: string) => Promise<void>,
): Promise<void> {
  const dir = await tempDir();
  const path = join(dir, "orders.sqlite");
  const store = new OrderStore(path);
  try {
    await fn(store, path);
  } finally {
    store.close();
    await removeDir(dir);
  }
}

function insert(store: OrderStore, n: number): string[] {
  return Array.from({ length: n }, () => {
    const id = crypto.randomUUID();
    store.insert(id, "ada@example.com", ITEMS);
    return id;
  });
}

test("orders: markSent marks an order sent once committed", async () => {
  await withStore(async (store) => {
    const [id] = insert(store, 1);
    const marked = store.markSent(id);
    assert.equal(
      store.get(id)?.emailStatus,
      "pending",
      "not before the commit",
    );
    await marked;
    const order = store.get(id);
    assert.equal(order?.emailStatus, "sent");
    assert.equal(order?.emailAttempts, 1);
  });
});

test("orders: the marks made together share one transaction", async () => {
  await withStore(async (store, path) => {
    const ids = insert(store, 5);
    // A second connection makes the update of one order fail: if the five
    // marks are one transaction, none of them is committed.
    const other = new DatabaseSync(path);
    other.exec(`
      CREATE TRIGGER refuse BEFORE UPDATE OF email_status ON orders
      WHEN NEW.id = '${ids[2]}' BEGIN SELECT RAISE(ABORT, 'refused'); END;
    `);
    other.close();
    const marks = ids.map((id) => store.markSent(id));
    const outcomes = await Promise.allSettled(marks);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.match(String(outcome.reason?.message), /refused/);
    }
    for (const id of ids) {
      assert.equal(store.get(id)?.emailStatus, "pending", id);
      assert.equal(store.get(id)?.emailAttempts, 0, id);
    }
    // The store goes on: the next batch, without the refused order, commits.
    await Promise.all([ids[0], ids[1]].map((id) => store.markSent(id)));
    assert.deepEqual(
      ids.map((id) => store.get(id)?.emailStatus),
      ["sent", "sent", "pending", "pending", "pending"],
    );
  });
});

test("orders: a mark made after a commit starts the next batch", async () => {
  await withStore(async (store) => {
    const [first, second] = insert(store, 2);
    await store.markSent(first);
    await store.markSent(second);
    assert.equal(store.get(first)?.emailStatus, "sent");
    assert.equal(store.get(second)?.emailStatus, "sent");
    store.flush(); // nothing pending: nothing happens
  });
});

test("orders: close() commits the pending marks first", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "orders.sqlite");
    const store = new OrderStore(path);
    const [id] = insert(store, 1);
    const marked = store.markSent(id);
    store.close();
    await marked;
    const reopened = new OrderStore(path);
    try {
      assert.equal(reopened.get(id)?.emailStatus, "sent");
    } finally {
      reopened.close();
    }
  } finally {
    await removeDir(dir);
  }
});

test("orders: a mark made after close() rejects, naming the order", async () => {
  const dir = await tempDir();
  try {
    const store = new OrderStore(join(dir, "orders.sqlite"));
    const [id] = insert(store, 1);
    store.close();
    await assert.rejects(store.markSent(id), {
      message: `Cannot mark order ${id} sent: the order store is closed`,
    });
  } finally {
    await removeDir(dir);
  }
});

test("orders: an email with a control character or a lone surrogate is refused", () => {
  const items = [{ sku: "MUG-1", quantity: 1 }];
  for (
    const email of [
      "a\u0000b@b.co",
      "a\u0001b@b.co",
      "a\u0085b@b.co",
      "a\ud800b@b.co",
    ]
  ) {
    const checked = validateOrder({ email, items });
    assert.ok("error" in checked, JSON.stringify(email));
    assert.match(checked.error, /^'email' must be an email address/);
  }
  for (const email of ["ada@example.com", "äda@exämple.com", "a😀@b.co"]) {
    assert.deepEqual(validateOrder({ email, items }), { email, items }, email);
  }
});

test("orders: a body that cannot be read is a 400, or a 503 while the server shuts down", async () => {
  const closing = new AbortController();
  const app = orderRoutes({ closing: closing.signal } as OrderDeps);
  const post = () =>
    app.request("/", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": "64" },
      body: new ReadableStream({
        pull(controller) {
          controller.error(new Error("connection reset"));
        },
      }),
      duplex: "half",
    } as RequestInit);
  const refused = await post();
  assert.equal(refused.status, 400);
  assert.deepEqual(await refused.json(), {
    error: "The body could not be read: connection reset",
  });
  closing.abort();
  const later = await post();
  assert.equal(later.status, 503);
  assert.equal(later.headers.get("retry-after"), "5");
  assert.deepEqual(await later.json(), {
    error:
      "The server is shutting down: The body could not be read; send it again",
  });
});

test("orders: summaryChunk sums each chunk of orders in rowid order, and says where the next begins", async () => {
  await withStore(async (store) => {
    // 7 orders: quantities 1 + 2 + ... + 7 in two items each (n and 1);
    // the 2nd and 5th sent, the 6th failed.
    const ids = Array.from({ length: 7 }, (_, i) => {
      const id = crypto.randomUUID();
      store.insert(id, "ada@example.com", [
        { sku: "MUG-1", quantity: i + 1 },
        { sku: "TEE-2", quantity: 1 },
      ]);
      return id;
    });
    await store.markSent(ids[1]);
    await store.markSent(ids[4]);
    store.markFailed(ids[5]);
    const chunks = [];
    for (let after: number | undefined = 0; after !== undefined;) {
      const chunk = store.summaryChunk(after, 3);
      chunks.push(chunk);
      after = chunk.last;
    }
    assert.deepEqual(chunks, [
      {
        count: 3,
        quantity: 1 + 2 + 3 + 3,
        email: { pending: 2, sent: 1, failed: 0 },
        last: 3,
      },
      {
        count: 3,
        quantity: 4 + 5 + 6 + 3,
        email: { pending: 1, sent: 1, failed: 1 },
        last: 6,
      },
      {
        count: 1,
        quantity: 7 + 1,
        email: { pending: 1, sent: 0, failed: 0 },
        last: undefined,
      },
    ]);
    // A table that ends on a chunk's edge: one more, empty, chunk.
    assert.deepEqual(store.summaryChunk(7, 3), {
      count: 0,
      quantity: 0,
      email: { pending: 0, sent: 0, failed: 0 },
      last: undefined,
    });
  });
});
