// POST /orders and GET /orders/:id.
//
// An order is validated, stored in SQLite (`node:sqlite`, the same module on
// Deno and Bun) and answered at once with 201; the confirmation email is sent
// in the background, with bounded retries. The order row records every try:
// `email_status` is "pending" until the email is sent ("sent") or every try
// failed ("failed", with the last error). At the next start, every order
// whose email was not sent is sent again.
//
// In durable mode (durable.ts) the email is a task of the durable queue
// instead: `POST /orders` answers 201 only once the task is stored, and
// `confirmOrder` makes one try per delivery; the queue retries.

import type { BackgroundTasksEnv } from "@background/tasks/hono";
import type { DurableContext } from "@background/tasks/durable";
import { Hono } from "hono";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  BodyTooLarge,
  brief,
  hasContentType,
  jsonError,
  messageOf,
  readText,
  show,
  unavailable,
  unreadable,
} from "./http.ts";
import type { MailMessage, MailTransport } from "./mail.ts";
import type { Spawner } from "./photos.ts";
import { isUuid } from "./storage.ts";

/** One line of an order. */
export interface OrderItem {
  sku: string;
  quantity: number;
}

/** Where an order's confirmation email is. */
export type EmailStatus = "pending" | "sent" | "failed";

/** An order as stored. */
export interface Order {
  orderId: string;
  email: string;
  items: OrderItem[];
  createdAt: string;
  emailStatus: EmailStatus;
  emailAttempts: number;
  emailError: string | null;
}

interface OrderRow {
  id: string;
  email: string;
  items: string;
  created_at: string;
  email_status: EmailStatus;
  email_attempts: number;
  email_error: string | null;
}

/**
 * How long a "sent" mark may wait for others to share its commit, in ms:
 * long enough to gather the marks of a busy moment, short next to an email.
 */
export const SENT_BATCH_MS = 5;

interface SentMark {
  id: string;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * The `orders` table. Every call is one short synchronous statement, but
 * {@linkcode OrderStore.markSent}, which batches.
 */
export class OrderStore {
  readonly #db: DatabaseSync;
  /** The statement of `summaryChunk`, prepared on first use. */
  #summary: StatementSync | undefined;
  #sent: SentMark[] = [];
  #sentTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    // Two processes may share the file (durable mode): wait for the other's
    // write rather than fail at once.
    this.#db.exec(`
      PRAGMA busy_timeout = 5000;
      PRAGMA journal_mode = WAL;
      CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        items TEXT NOT NULL,
        created_at TEXT NOT NULL,
        email_status TEXT NOT NULL DEFAULT 'pending'
          CHECK (email_status IN ('pending', 'sent', 'failed')),
        email_attempts INTEGER NOT NULL DEFAULT 0,
        email_error TEXT
      );
      CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        order_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `);
  }

  /**
   * Inserts an order under an `Idempotency-Key`: the first request with a
   * key inserts the order; another within {@linkcode IDEMPOTENCY_TTL} with
   * the same key and the same body gets the same order back (`created:
   * false`), and one with a different body a `conflict`. A key older than
   * that is forgotten and may be used again. One synchronous transaction:
   * two requests with one key cannot both insert.
   */
  insertOnce(
    key: string,
    requestHash: string,
    id: string,
    email: string,
    items: OrderItem[],
    now: number = Date.now(),
  ): { order: Order; created: boolean } | { conflict: Order } {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#db.prepare("DELETE FROM idempotency_keys WHERE created_at < ?")
        .run(now - IDEMPOTENCY_TTL);
      const seen = this.#db.prepare(
        "SELECT request_hash, order_id FROM idempotency_keys WHERE key = ?",
      ).get(key) as { request_hash: string; order_id: string } | undefined;
      let outcome: { order: Order; created: boolean } | { conflict: Order };
      const first = seen === undefined ? undefined : this.get(seen.order_id);
      if (seen !== undefined && first !== undefined) {
        outcome = seen.request_hash === requestHash
          ? { order: first, created: false }
          : { conflict: first };
      } else {
        this.#db.prepare(
          "INSERT OR REPLACE INTO idempotency_keys (key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?)",
        ).run(key, requestHash, id, now);
        outcome = { order: this.insert(id, email, items), created: true };
      }
      this.#db.exec("COMMIT");
      return outcome;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /** The most recent orders, newest first. */
  recent(limit: number): Order[] {
    return this.#db.prepare(
      "SELECT * FROM orders ORDER BY created_at DESC, rowid DESC LIMIT ?",
    ).all(limit).map((row) => toOrder(row as unknown as OrderRow));
  }

  /** How many orders there are (what a report will read, for its progress). */
  count(): number {
    const row = this.#db.prepare("SELECT COUNT(*) AS n FROM orders").get() as {
      n: number;
    };
    return Number(row.n);
  }

  /**
   * Counts for reports, over the orders after `afterRow` (a rowid), at most
   * `limit` of them: a report reads the table chunk by chunk, yielding to
   * the event loop between chunks, so that no request waits behind it.
   * `last` is the rowid to pass next; `undefined` when nothing is left.
   */
  summaryChunk(
    afterRow: number,
    limit: number,
  ): {
    count: number;
    quantity: number;
    email: Record<EmailStatus, number>;
    last: number | undefined;
  } {
    // Summed by SQLite, one row back: no row objects and parsed items per
    // order in this heap. With 20 reports over 20,000 orders on Deno, the
    // worst `GET /health` went from 51–56 ms to 22–32 ms, p99 from 8–14 ms
    // to 8 ms (bench/demo_reports.ts, two runs each).
    this.#summary ??= this.#db.prepare(`
      SELECT COUNT(*) AS count, MAX(row) AS last,
        TOTAL(email_status = 'pending') AS pending,
        TOTAL(email_status = 'sent') AS sent,
        TOTAL(email_status = 'failed') AS failed,
        TOTAL((SELECT TOTAL(json_extract(value, '$.quantity'))
          FROM json_each(items))) AS quantity
      FROM (SELECT rowid AS row, email_status, items FROM orders
        WHERE rowid > ? ORDER BY rowid LIMIT ?)`);
    const sums = this.#summary.get(afterRow, limit) as Record<
      "count" | "last" | "pending" | "sent" | "failed" | "quantity",
      number | bigint | null
    >;
    const count = Number(sums.count);
    return {
      count,
      quantity: Number(sums.quantity),
      email: {
        pending: Number(sums.pending),
        sent: Number(sums.sent),
        failed: Number(sums.failed),
      },
      last: count < limit ? undefined : Number(sums.last),
    };
  }

  insert(id: string, email: string, items: OrderItem[]): Order {
    const createdAt = new Date().toISOString();
    this.#db.prepare(
      "INSERT INTO orders (id, email, items, created_at) VALUES (?, ?, ?, ?)",
    ).run(id, email, JSON.stringify(items), createdAt);
    return this.get(id)!;
  }

  get(id: string): Order | undefined {
    const row = this.#db.prepare("SELECT * FROM orders WHERE id = ?").get(id);
    return row === undefined ? undefined : toOrder(row as unknown as OrderRow);
  }

  /** Orders whose confirmation was not sent: interrupted or failed. */
  unsent(): Order[] {
    return this.#db.prepare(
      "SELECT * FROM orders WHERE email_status != 'sent' ORDER BY created_at",
    ).all().map((row) => toOrder(row as unknown as OrderRow));
  }

  /** Records one failed try; the status is left as it is. */
  recordFailure(id: string, error: string): void {
    this.#db.prepare(
      "UPDATE orders SET email_attempts = email_attempts + 1, email_error = ? WHERE id = ?",
    ).run(error, id);
  }

  /**
   * Marks an order's email sent. The marks are group-committed: every mark
   * made within {@linkcode SENT_BATCH_MS} of the first pending one goes into
   * one transaction, so a busy server pays one commit (and one `fsync`) per
   * batch instead of one per order. Resolves once the mark is committed;
   * rejects with the commit's error (the order then stays "pending" and is
   * sent again at the next start: the outbox replaces the same file).
   */
  markSent(id: string): Promise<void> {
    if (!this.#db.isOpen) {
      return Promise.reject(
        new Error(`Cannot mark order ${id} sent: the order store is closed`),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#sent.push({ id, resolve, reject });
    this.#sentTimer ??= setTimeout(() => this.flush(), SENT_BATCH_MS);
    return promise;
  }

  /** Commits the pending "sent" marks now, in one transaction. */
  flush(): void {
    clearTimeout(this.#sentTimer);
    this.#sentTimer = undefined;
    const batch = this.#sent;
    if (batch.length === 0) return;
    this.#sent = [];
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const update = this.#db.prepare(
          "UPDATE orders SET email_attempts = email_attempts + 1, email_status = 'sent', email_error = NULL WHERE id = ?",
        );
        for (const mark of batch) update.run(mark.id);
        this.#db.exec("COMMIT");
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      for (const mark of batch) mark.reject(error);
      return;
    }
    for (const mark of batch) mark.resolve();
  }

  markFailed(id: string): void {
    this.#db.prepare(
      "UPDATE orders SET email_status = 'failed' WHERE id = ?",
    ).run(id);
  }

  /** Commits the pending "sent" marks, then closes the database. */
  close(): void {
    this.flush();
    this.#db.close();
  }
}

function toOrder(row: OrderRow): Order {
  return {
    orderId: row.id,
    email: row.email,
    items: JSON.parse(row.items),
    createdAt: row.created_at,
    emailStatus: row.email_status,
    emailAttempts: Number(row.email_attempts),
    emailError: row.email_error,
  };
}

/** What the order routes and the email task need. */
export interface OrderDeps {
  orders: OrderStore;
  /** Aborted once the server shuts down. */
  closing: AbortSignal;
  transport: MailTransport;
  /** Tries per email, the first included. */
  mailAttempts: number;
  /** The first wait between tries, in ms; it doubles each time. */
  mailRetryDelay: number;
  /**
   * Whether `POST /orders` sends the confirmation. The other values are
   * benchmark knobs (bench/server.ts): `false` starts no task at all
   * (`SEND_EMAILS=0`), `"noop"` starts an empty task with the same name
   * instead of the email (`SEND_EMAILS=noop`), to measure the task manager
   * alone.
   */
  sendEmails: boolean | "noop";
  /**
   * Durable mode: stores the order's confirmation in the task queue and
   * resolves with the task's id, or rejects (the queue cannot be reached).
   * Without it, the email is sent by a task of this process.
   */
  enqueue?: (orderId: string) => Promise<string>;
}

/** How long an `Idempotency-Key` is remembered: 24 hours. */
export const IDEMPOTENCY_TTL = 24 * 60 * 60 * 1000;
/** What an `Idempotency-Key` may be: 1 to 255 visible ASCII characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Request bodies are small: 64 KiB is plenty for 100 items. */
const MAX_ORDER_BYTES = 64 * 1024;
const MAX_ITEMS = 100;
// No white space, control character or lone surrogate either: what is
// accepted is stored and sent as it is (SQLite would cut a NUL).
const EMAIL =
  /^[^\s@"<>,;\p{Cc}\p{Cs}]+@[^\s@"<>,;\p{Cc}\p{Cs}]+\.[^\s@"<>,;\p{Cc}\p{Cs}]+$/u;
const SKU = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Checks an order body: `{ email, items: [{ sku, quantity }] }`. Returns the
 * clean order, or a message naming the first bad field.
 */
export function validateOrder(
  body: unknown,
): { email: string; items: OrderItem[] } | { error: string } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { error: "The body must be a JSON object with 'email' and 'items'" };
  }
  const { email, items } = body as Record<string, unknown>;
  if (typeof email !== "string" || email.length > 254 || !EMAIL.test(email)) {
    return {
      error: `'email' must be an email address, received ${brief(email)}`,
    };
  }
  if (!Array.isArray(items) || items.length === 0) {
    return { error: "'items' must be a non-empty array of { sku, quantity }" };
  }
  if (items.length > MAX_ITEMS) {
    return {
      error:
        `'items' may hold at most ${MAX_ITEMS} lines, received ${items.length}`,
    };
  }
  const clean: OrderItem[] = [];
  for (const [i, item] of items.entries()) {
    if (typeof item !== "object" || item === null) {
      return { error: `'items[${i}]' must be an object { sku, quantity }` };
    }
    const { sku, quantity } = item as Record<string, unknown>;
    if (typeof sku !== "string" || !SKU.test(sku)) {
      return {
        error:
          `'items[${i}].sku' must be 1 to 64 letters, digits, '.', '_' or '-', received ${
            brief(sku)
          }`,
      };
    }
    if (
      typeof quantity !== "number" || !Number.isInteger(quantity) ||
      quantity < 1 || quantity > 10_000
    ) {
      return {
        error:
          `'items[${i}].quantity' must be an integer from 1 to 10000, received ${
            brief(quantity)
          }`,
      };
    }
    clean.push({ sku, quantity });
  }
  return { email, items: clean };
}

/** The routes under `/orders`. */
export function orderRoutes(deps: OrderDeps): Hono<BackgroundTasksEnv> {
  const app = new Hono<BackgroundTasksEnv>();

  app.post("/", async (c) => {
    if (!hasContentType(c, "application/json")) {
      return jsonError(
        c,
        415,
        `POST /orders takes application/json, received Content-Type ${
          show(c.req.header("content-type") ?? "(none)")
        }`,
      );
    }
    let text: string;
    try {
      text = await readText(c.req.raw, MAX_ORDER_BYTES);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        return jsonError(c, 413, error.message);
      }
      return unreadable(c, deps.closing, "The body", error);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return jsonError(
        c,
        400,
        `The body is not valid JSON: ${messageOf(error)}`,
      );
    }
    const checked = validateOrder(body);
    if ("error" in checked) return jsonError(c, 400, checked.error);
    const key = c.req.header("idempotency-key");
    let order: Order;
    if (key === undefined) {
      order = deps.orders.insert(
        crypto.randomUUID(),
        checked.email,
        checked.items,
      );
    } else {
      if (!IDEMPOTENCY_KEY.test(key)) {
        return jsonError(
          c,
          400,
          `The Idempotency-Key header must be 1 to 255 visible ASCII characters, received ${
            brief(key)
          }`,
        );
      }
      const outcome = deps.orders.insertOnce(
        key,
        await hashOf(checked),
        crypto.randomUUID(),
        checked.email,
        checked.items,
      );
      if ("conflict" in outcome) {
        return jsonError(
          c,
          422,
          `The Idempotency-Key ${
            brief(key)
          } was used within 24 h for order ${outcome.conflict.orderId}, with a different body`,
        );
      }
      order = outcome.order;
      if (!outcome.created) {
        // The same request again (its 201 was lost, say): the same answer,
        // and no second email.
        c.header("Location", `/orders/${order.orderId}`);
        c.header("Idempotent-Replayed", "true");
        return c.json({ orderId: order.orderId }, 201);
      }
    }
    if (!deps.sendEmails) {
      // Benchmark knob: no email at all.
    } else if (deps.sendEmails === "noop") {
      // Benchmark knob: a task that does nothing (none at all once shut down).
      try {
        c.var.tasks.run(`send confirmation ${order.orderId}`, async () => {});
      } catch {
        // Shutting down.
      }
    } else if (deps.enqueue !== undefined) {
      try {
        await deps.enqueue(order.orderId);
      } catch (error) {
        // Not accepted: the row stays "pending". (Had the task been stored
        // after all, late, the email is sent: the row then says so.)
        console.error(
          `order ${order.orderId}: its confirmation could not be queued: ${
            messageOf(error)
          }`,
        );
        return unavailable(
          c,
          "The order could not be queued for confirmation; try again later",
        );
      }
    } else {
      try {
        sendConfirmation(c.var.tasks, deps, order);
      } catch (error) {
        // Shutting down: the row says "pending", so it is sent at the next start.
        console.warn(
          `order ${order.orderId}: confirmation deferred to the next start: ${
            messageOf(error)
          }`,
        );
      }
    }
    c.header("Location", `/orders/${order.orderId}`);
    return c.json({ orderId: order.orderId }, 201);
  });

  app.get("/", (c) => c.json({ orders: deps.orders.recent(50) }));

  app.get("/:id", (c) => {
    const id = c.req.param("id");
    const order = isUuid(id) ? deps.orders.get(id) : undefined;
    if (order === undefined) {
      return jsonError(c, 404, `There is no order with id ${show(id)}`);
    }
    return c.json(order);
  });

  return app;
}

/**
 * Sends an order's confirmation in a background task, retried by the
 * manager (`retry`: MAIL_ATTEMPTS tries, MAIL_RETRY_MS apart, doubling).
 * Every failed try is logged and recorded in the row; when the last try
 * fails the row says "failed" and the task rejects (so the manager's
 * `onError` reports it too). A cancelled send (shutdown) leaves the row as it
 * was, to be sent again at the next start.
 *
 * @throws {Error} The task manager is shut down.
 */
export function sendConfirmation(
  spawner: Pick<Spawner, "run">,
  deps: OrderDeps,
  order: Order,
): void {
  const { orderId } = order;
  spawner.run(`send confirmation ${orderId}`, async ({ signal, attempt }) => {
    try {
      await deps.transport.send(confirmation(order), { signal });
    } catch (error) {
      if (signal.aborted) throw error;
      console.warn(
        `order ${orderId}: email try ${attempt} of ${deps.mailAttempts} failed: ${
          messageOf(error)
        }`,
      );
      deps.orders.recordFailure(orderId, messageOf(error));
      if (attempt >= deps.mailAttempts) deps.orders.markFailed(orderId);
      throw error;
    }
    await deps.orders.markSent(orderId);
  }, {
    // The manager retries: a failed try waits MAIL_RETRY_MS, then twice
    // that, and so on, as a pending task whose slot is free. A shutdown
    // cancels the wait; the row then says "pending", for the next start.
    retry: {
      attempts: deps.mailAttempts,
      backoff: deps.mailRetryDelay,
      jitter: 0.1,
    },
  });
}

/**
 * Durable mode: the handler of the `send-confirmation` task. Makes one try
 * per delivery (the queue retries with backoff), records a failed try in the
 * row, and marks the order "failed" when the last attempt fails. An order
 * already sent is not sent again (a task may be delivered twice).
 *
 * @throws {Error} The try failed, or `signal` aborted it (the queue hands
 * the task back).
 */
export async function confirmOrder(
  deps: OrderDeps,
  orderId: unknown,
  { signal, attempt, attempts }: DurableContext,
): Promise<void> {
  if (typeof orderId !== "string" || !isUuid(orderId)) {
    throw new TypeError(
      `send-confirmation: 'orderId' must be an order's UUID, received ${
        JSON.stringify(orderId) ?? "nothing"
      }`,
    );
  }
  const order = deps.orders.get(orderId);
  if (order === undefined) {
    console.warn(`order ${orderId}: not found; no confirmation to send`);
    return;
  }
  if (order.emailStatus === "sent") return;
  try {
    await deps.transport.send(confirmation(order), { signal });
  } catch (error) {
    if (signal.aborted) throw error;
    console.warn(
      `order ${orderId}: email try ${attempt} of ${attempts} failed: ${
        messageOf(error)
      }`,
    );
    deps.orders.recordFailure(orderId, messageOf(error));
    if (attempt >= attempts) deps.orders.markFailed(orderId);
    throw error;
  }
  await deps.orders.markSent(orderId);
}

/** Sends again every confirmation that was not sent; returns how many. */
export function resumeOrders(
  spawner: Pick<Spawner, "run">,
  deps: OrderDeps,
): number {
  const unsent = deps.orders.unsent();
  for (const order of unsent) sendConfirmation(spawner, deps, order);
  return unsent.length;
}

/** A digest of a checked order, to tell a repeated request from a different one. */
async function hashOf(
  order: { email: string; items: OrderItem[] },
): Promise<string> {
  const bytes = new TextEncoder().encode(
    JSON.stringify([order.email, order.items]),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function confirmation(order: Order): MailMessage {
  const lines = order.items.map((item) => `  ${item.quantity} x ${item.sku}`);
  return {
    id: order.orderId,
    from: "shop@demo.invalid",
    to: order.email,
    subject: `Your order ${order.orderId}`,
    text: [
      "Thank you for your order.",
      "",
      ...lines,
      "",
      `Order ${order.orderId}, placed ${order.createdAt}.`,
    ].join("\n"),
  };
}
