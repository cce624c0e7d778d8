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
