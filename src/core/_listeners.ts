// Which event types have a listener on a manager, kept exactly, so that it
// makes an event only when someone will receive it. An EventTarget cannot be
// asked how many listeners it has, so the manager keeps its own list: an entry
// per (type, listener, capture), added and removed by EventTarget's own rules
// (adding the same triple again does nothing, whatever its options), and
// removed as well when a `once` listener fires or a `signal` listener's
// signal aborts, as EventTarget removes them.

type Listener = EventListenerOrEventListenerObject;

/** One listener as registered: what the EventTarget was given for it. */
interface Entry {
  /** The listener itself, or for a `once` listener a wrapper that forgets it first. */
  readonly callback: Listener;
  /** The `signal` option, watched to forget the listener when it aborts. */
  readonly signal: AbortSignal | undefined;
  readonly onAbort: (() => void) | undefined;
}

/** The listeners of one manager, by type, and whether each type has one. */
export class Listeners {
  /** `type` or `type capture` -> listener -> entry. */
  readonly #entries: Map<string, Map<unknown, Entry>> = new Map();
  readonly #changed: (type: string, listened: boolean) => void;

  /** `changed(type, listened)` runs when a type gets its first listener or loses its last. */
  constructor(changed: (type: string, listened: boolean) => void) {
    this.#changed = changed;
  }

  /**
   * Records a listener, and returns what to pass to
   * `EventTarget.prototype.addEventListener` in its place: the listener, a
   * wrapper for a `once` listener, or `undefined` when EventTarget would add
   * nothing (a duplicate, no listener, an aborted signal). A value that is
   * not a listener is returned as it is, for EventTarget to refuse.
   */
  add(
    type: string,
    listener: Listener | null | undefined,
    options: boolean | AddEventListenerOptions | undefined,
  ): Listener | null | undefined {
    if (listener === null || listener === undefined) return undefined;
    if (typeof listener !== "function" && typeof listener !== "object") {
      return listener;
    }
    const key = keyOf(type, options);
    let byListener = this.#entries.get(key);
    if (byListener?.has(listener)) return undefined;
    const settings = typeof options === "object" ? options : undefined;
    const once = settings?.once === true;
    const signal = settings?.signal ?? undefined;
    if (signal?.aborted) return undefined;
    const forget = () => this.#forget(type, key, listener);
    const callback: Listener = once
      ? function (this: unknown, event: Event): void {
        forget();
        if (typeof listener === "function") listener.call(this, event);
        else listener.handleEvent(event);
      }
      : listener;
    let onAbort: (() => void) | undefined;
    if (signal !== undefined) {
      onAbort = forget;
      signal.addEventListener("abort", onAbort, { once: true });
    }
    if (byListener === undefined) {
      this.#entries.set(key, byListener = new Map());
    }
    const had = this.has(type);
    byListener.set(listener, { callback, signal, onAbort });
    if (!had) this.#changed(type, true);
    return callback;
  }

  /**
   * Forgets a listener, and returns what to pass to
   * `EventTarget.prototype.removeEventListener`: what `add` returned for it,
   * or `undefined` when it is not registered.
   */
  remove(
    type: string,
    listener: Listener | null | undefined,
    options: boolean | EventListenerOptions | undefined,
  ): Listener | undefined {
    const entry = this.#entries.get(keyOf(type, options))?.get(listener);
    if (entry === undefined) return undefined;
    this.#forget(type, keyOf(type, options), listener);
    return entry.callback;
  }

  /** Whether `type` has a listener. */
  has(type: string): boolean {
    return (this.#entries.get(type)?.size ?? 0) +
        (this.#entries.get(`${type} capture`)?.size ?? 0) > 0;
  }

  #forget(type: string, key: string, listener: unknown): void {
    const byListener = this.#entries.get(key);
    const entry = byListener?.get(listener);
    if (entry === undefined) return;
    byListener!.delete(listener);
    if (entry.onAbort !== undefined) {
      entry.signal!.removeEventListener("abort", entry.onAbort);
    }
    if (!this.has(type)) this.#changed(type, false);
  }
}

function keyOf(
  type: string,
  options: boolean | EventListenerOptions | undefined,
): string {
  const capture = typeof options === "boolean" ? options : options?.capture;
  return capture ? `${type} capture` : type;
}
