// The listeners of one backend object in one process (memory.ts,
// deno_kv.ts, sqlite.ts): each has a number of slots, and deliveries go to
// them in turn. Kept here, once, so that the backends share the same
// fairness.

/** What the turns need of a listener. */
export interface Slotted {
  readonly concurrency: number;
  /** Deliveries it runs now. */
  running: number;
  /** Stopped: it takes nothing more. */
  stopped: boolean;
}

/** Listeners that take deliveries in turn (round robin). */
export class Listeners<L extends Slotted> {
  readonly #list: L[] = [];
  #next = 0;

  /** How many listen. */
  get size(): number {
    return this.#list.length;
  }

  add(listener: L): void {
    this.#list.push(listener);
  }

  /** Stops one listener; its running deliveries finish. */
  stop(listener: L): void {
    listener.stopped = true;
    const index = this.#list.indexOf(listener);
    if (index !== -1) this.#list.splice(index, 1);
  }

  /** Stops them all. */
  stopAll(): void {
    for (const listener of this.#list) listener.stopped = true;
    this.#list.length = 0;
  }

  /** Free slots, over every listener. */
  freeSlots(): number {
    let free = 0;
    for (const listener of this.#list) {
      free += listener.concurrency - listener.running;
    }
    return free;
  }

  /** The next listener in turn with a free slot, or `undefined`. */
  free(): L | undefined {
    const count = this.#list.length;
    for (let i = 0; i < count; i++) {
      const listener = this.#list[(this.#next + i) % count];
      if (listener.running < listener.concurrency) {
        this.#next = (this.#next + i + 1) % count;
        return listener;
      }
    }
    return undefined;
  }
}
