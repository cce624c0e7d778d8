// A fake clock for tests of time-driven behaviour (backoffs, rate limits,
// progress events): while installed, `setTimeout`, `clearTimeout` and
// `Date.now` are the clock's, and time moves only when a test calls
// `advance(ms)`, which fires the due timers in order and lets the microtasks
// they queue run. Always `uninstall()` in `finally`.

import { flush } from "./_harness.ts";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

export class FakeClock {
  #now = 1_700_000_000_000;
  #seq = 0;
  readonly #timers: Map<number, Timer> = new Map();
  readonly #saved = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    now: Date.now,
  };

  /** Puts the clock in place of the real one. */
  install(): this {
    const timers = this.#timers;
    globalThis.setTimeout = ((fn: () => void, ms = 0) => {
      const id = ++this.#seq;
      timers.set(id, { at: this.#now + Math.max(0, ms), seq: id, fn });
      return id;
    }) as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((id?: number) => {
      if (id !== undefined) timers.delete(id);
    }) as unknown as typeof clearTimeout;
    Date.now = () => this.#now;
    return this;
  }

  /** Puts the real clock back. */
  uninstall(): void {
    globalThis.setTimeout = this.#saved.setTimeout;
    globalThis.clearTimeout = this.#saved.clearTimeout;
    Date.now = this.#saved.now;
  }

  /** The clock's time, in milliseconds since the epoch. */
  get now(): number {
    return this.#now;
  }

  /** How many timers are set. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time on by `ms`, firing each timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await flush();
    for (;;) {
      let next: [number, Timer] | undefined;
      for (const entry of this.#timers) {
        const [, timer] = entry;
        if (
          timer.at <= end &&
          (next === undefined || timer.at < next[1].at ||
            (timer.at === next[1].at && timer.seq < next[1].seq))
        ) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
      await flush();
    }
    this.#now = end;
    await flush();
  }
}
