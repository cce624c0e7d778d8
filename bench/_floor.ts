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
  #events: EventTarget | undefined;
  /**
   * @param limit At most this many tasks run at once.
   * @param events If given, each task dispatches a `start` and a `settle`
   * `Event` on it: the least a manager whose events are real `Event`s adds.
   */
  constructor(limit: number, events?: EventTarget) {
    this.#limit = limit;
    this.#events = events;
  }
  run(fn: (signal: AbortSignal) => unknown): number {
    const id = ++this.#id;
    const controller = new AbortController();
    this.#tasks.set(id, controller);
    const done = () => {
      this.#tasks.delete(id);
      this.#events?.dispatchEvent(new Event("settle"));
      this.#running--;
      if (this.#head < this.#queue.length) {
        this.#running++;
        queueMicrotask(this.#queue[this.#head++]);
      } else if (this.#running === 0) this.#idle?.();
    };
    const start = () => {
      let result: unknown;
      this.#events?.dispatchEvent(new Event("start"));
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
