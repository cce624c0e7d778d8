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

/** A heap entry: the item, its priority, and its place among equals. */
interface Ranked<T> {
  readonly item: T;
  readonly priority: number;
  readonly seq: number;
}

/**
 * A queue by priority, highest first, first in first out among equals. Items
 * of priority 0 (the default) go through a plain {@linkcode Queue}, so a
 * program that sets no priority pays one comparison per operation; the
 * others go through a binary heap. Removal is lazy, as in `Queue`.
 */
export class PriorityQueue<T extends { readonly priority: number }> {
  readonly #plain: Queue<T> = new Queue();
  readonly #heap: Ranked<T>[] = [];
  #seq = 0;
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
    const heap = this.#heap;
    heap.push({ item, priority, seq: this.#seq++ });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  shift(): T | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return this.#plain.shift();
    if (heap[0].priority < 0) {
      const plain = this.#plain.shift();
      if (plain !== undefined) return plain;
    }
    const top = heap[0].item;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let first = i;
        if (left < heap.length && before(heap[left], heap[first])) first = left;
        if (right < heap.length && before(heap[right], heap[first])) {
          first = right;
        }
        if (first === i) break;
        [heap[i], heap[first]] = [heap[first], heap[i]];
        i = first;
      }
    }
    return top;
  }
}

/** Whether `a` comes out before `b`: higher priority, then queued earlier. */
function before<T>(a: Ranked<T>, b: Ranked<T>): boolean {
  return a.priority > b.priority ||
    (a.priority === b.priority && a.seq < b.seq);
}
