// The baseline every benchmark compares with.

/**
 * The least any manager with cancellation could cost: an AbortController per
 * task, a start through queueMicrotask, a Map for tracking, a FIFO for the
 * concurrency limit, and a promise to wait for idleness.
 */
export class Floor {
  #tasks = new Map<number, AbortController>();
  #queue: (() => void)[] = [];
  #head = 0;
  #running = 0;
  #id = 0;
  #limit: number;
  #idle: (() => void) | undefined;
  constructor(limit: number) {
    this.#limit = limit;
  }
  run(fn: (signal: AbortSignal) => unknown): number {
    const id = ++this.#id;
    const controller = new AbortController();
    this.#tasks.set(id, controller);
    const done = () => {
      this.#tasks.delete(id);
      this.#running--;
      if (this.#head < this.#queue.length) {
        this.#running++;
        queueMicrotask(this.#queue[this.#head++]);
      } else if (this.#running === 0) this.#idle?.();
    };
    const start = () => {
      let result: unknown;
      try {
        result = fn(controller.signal);
      } catch {
        return done();
      }
      if (result instanceof Promise) result.then(done, done);
      else done();
    };
    if (this.#running < this.#limit) {
      this.#running++;
      queueMicrotask(start);
    } else this.#queue.push(start);
    return id;
  }
  cancel(id: number): void {
    this.#tasks.get(id)?.abort();
  }
  idle(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle = resolve);
  }
}
