// A sliding-window rate limit: at most `limit` starts in any window of
// `interval` ms. It keeps the times of the last `limit` starts in a ring, so
// a check is one comparison, and it makes no timer: its owner (the
// scheduler, a group) sets one for the whole queue from `nextAt`.

/** The starts of the last `interval` ms, against a `limit`. */
export class RateWindow {
  readonly #limit: number;
  readonly #interval: number;
  /** The last `limit` start times, oldest at `#next` once full. */
  readonly #starts: number[];
  #next = 0;
  #count = 0;

  constructor(limit: number, interval: number) {
    this.#limit = limit;
    this.#interval = interval;
    this.#starts = new Array<number>(limit).fill(0);
  }

  /**
   * Whether one more start fits at `now`, with `reserved` starts already
   * promised (admitted, not started yet) besides those recorded.
   */
  allows(now: number, reserved = 0): boolean {
    const at = this.nextAt(reserved);
    return at <= now;
  }

  /**
   * When one more start fits, with `reserved` promised: at once (0) if fewer
   * than `limit - reserved` starts are recorded, else when the start that
   * would make one too many leaves the window. `Infinity` when the promised
   * starts alone fill the window.
   */
  nextAt(reserved = 0): number {
    const free = this.#limit - reserved;
    if (free <= 0) return Infinity;
    if (this.#count < free) return 0;
    // The free-th most recent start must have left the window.
    const index = (this.#next - free + this.#limit) % this.#limit;
    return this.#starts[index] + this.#interval;
  }

  /** Records a start at `now`. */
  record(now: number): void {
    this.#starts[this.#next] = now;
    this.#next = (this.#next + 1) % this.#limit;
    if (this.#count < this.#limit) this.#count++;
  }
}
