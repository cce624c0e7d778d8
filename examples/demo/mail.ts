// Sending email: a pluggable transport, the default one that writes `.eml`
// files to an outbox folder, and a bounded retry with exponential backoff.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { isUuid, writeFileAtomic } from "./storage.ts";

/** One email. `id` is unique and names the message (an order's id). */
export interface MailMessage {
  id: string;
  from: string;
  to: string;
  subject: string;
  text: string;
}

/** Sends email. `send` rejects when the message was not accepted. */
export interface MailTransport {
  /**
   * Sends one message.
   *
   * @param options.signal Aborted when the send should stop (shutdown,
   * timeout): the promise should then reject with `signal.reason`.
   */
  send(message: MailMessage, options: { signal: AbortSignal }): Promise<void>;
}

/**
 * The default transport: writes each message as `<id>.eml` to a folder,
 * atomically, so a reader never sees half a message. Sending the same message
 * again replaces the file: a re-send after a restart makes no duplicate.
 */
export class OutboxTransport implements MailTransport {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async send(
    message: MailMessage,
    { signal }: { signal: AbortSignal },
  ): Promise<void> {
    signal.throwIfAborted();
    if (!isUuid(message.id)) {
      throw new TypeError(
        `Cannot send mail: 'message.id' must be a UUID, received ${
          JSON.stringify(message.id)
        }`,
      );
    }
    await mkdir(this.dir, { recursive: true });
    signal.throwIfAborted();
    await writeFileAtomic(join(this.dir, `${message.id}.eml`), toEml(message));
  }
}

/** Formats a message as RFC 5322 text. Addresses must hold no line break. */
export function toEml(message: MailMessage): string {
  for (const field of ["from", "to", "subject"] as const) {
    if (/[\r\n]/.test(message[field])) {
      throw new TypeError(
        `Cannot format mail: 'message.${field}' must not contain a line break`,
      );
    }
  }
  return [
    `Message-ID: <${message.id}@demo.invalid>`,
    `Date: ${new Date().toUTCString()}`,
    `From: ${message.from}`,
    `To: ${message.to}`,
    `Subject: ${message.subject}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    message.text.replace(/\r?\n/g, "\r\n"),
    "",
  ].join("\r\n");
}

/** How {@linkcode sendWithRetry} retries. */
export interface RetryOptions {
  /** Stops retrying: the promise rejects with `signal.reason`. */
  signal: AbortSignal;
  /** How many tries in all (the first one included). */
  attempts: number;
  /** The wait before the second try, in ms; it doubles after each failure. */
  baseDelay: number;
  /** Told about every failed try, the last one included. */
  onFailure?: (attempt: number, error: unknown) => void;
}

/**
 * Sends `message`, trying again after a failure up to `attempts` tries in
 * all, waiting `baseDelay`, then twice that, and so on (with a little jitter)
 * between tries. Resolves with the number of tries used; rejects with the
 * last error when every try failed, or with `signal.reason` once aborted.
 */
export async function sendWithRetry(
  transport: MailTransport,
  message: MailMessage,
  options: RetryOptions,
): Promise<number> {
  const { signal, attempts, baseDelay } = options;
  for (let attempt = 1;; attempt++) {
    signal.throwIfAborted();
    try {
      await transport.send(message, { signal });
      return attempt;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      options.onFailure?.(attempt, error);
      if (attempt >= attempts) throw error;
    }
    const delay = baseDelay * 2 ** (attempt - 1);
    await sleep(delay + Math.random() * delay * 0.1, signal);
  }
}

/** Waits `ms`; rejects with `signal.reason` as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
