/**
 * A first-in, first-out queue over an array with a moving head: `push` and
 * `shift` are O(1) and allocate nothing once the array has grown.
 *
 * Removal is lazy: a cancelled task stays in its slot and is skipped by the
 * scheduler when it comes to the head, so it is held at most as long as the
 * queue behind it.
 */
export class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** How many items it holds. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    const items = this.#items;
    if (this.#head === items.length) return undefined;
    const item = items[this.#head];
    items[this.#head++] = undefined;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= items.length) {
      // Drop the consumed half so a long-lived queue does not keep growing.
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}

/**
 * A queue by priority, highest first, first in first out among equals.
 *
 * One FIFO {@linkcode Queue} per priority, and a binary max-heap of the
 * priorities that have one: queueing or taking an item of a priority already
 * waiting is O(1), a new priority O(log p) for p distinct priorities, and
 * order among equals is the FIFO's own. Priority 0 (the default) has its FIFO
 * outside the heap, so a program that sets no priority pays one comparison
 * per operation. Removal is lazy, as in `Queue`.
 */
export class PriorityQueue<T extends { readonly priority: number }> {
  readonly #plain: Queue<T> = new Queue();
  /** The FIFO of each priority other than 0 that has items. */
  readonly #buckets: Map<number, Queue<T>> = new Map();
  /** Those priorities, as a max-heap. */
  readonly #heap: number[] = [];
  #ranked = false;

  /**
   * Whether items may have come out in another order than they went in: a
   * priority other than 0 was ever queued.
   */
  get ranked(): boolean {
    return this.#ranked;
  }

  push(item: T): void {
    const priority = item.priority;
    if (priority === 0) return this.#plain.push(item);
    this.#ranked = true;
    let bucket = this.#buckets.get(priority);
    if (bucket === undefined) {
      this.#buckets.set(priority, bucket = new Queue());
      this.#up(priority);
    }
    bucket.push(item);
  }

  shift(): T | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return this.#plain.shift();
    const top = heap[0];
    if (top < 0) {
      const plain = this.#plain.shift();
      if (plain !== undefined) return plain;
    }
    const bucket = this.#buckets.get(top)!;
    const item = bucket.shift()!;
    if (bucket.size === 0) {
      this.#buckets.delete(top);
      this.#down();
    }
    return item;
  }

  /** Adds a priority to the heap. */
  #up(priority: number): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(priority);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent] >= priority) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = priority;
  }

  /** Removes the heap's top. */
  #down(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    const n = heap.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && heap[right] > heap[left] ? right : left;
      if (heap[child] <= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
  }
}
