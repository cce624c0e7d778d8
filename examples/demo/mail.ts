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
