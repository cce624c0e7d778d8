// What differs between Deno, Bun and Node for a shutdown: how to listen for
// a signal, how to exit, and how to stop a server. The only runtime-specific
// code of the package; the core never imports it.

/** A server the hook can stop: what `Deno.serve` or `Bun.serve` returns, or a Node `http.Server`. */
export type StoppableServer =
  | { shutdown(): Promise<void> }
  | { stop(closeActiveConnections?: boolean): unknown }
  | {
    close(callback?: (error?: Error) => void): unknown;
    closeIdleConnections?(): void;
    closeAllConnections?(): void;
  };

interface DenoLike {
  addSignalListener(signal: string, handler: () => void): void;
  removeSignalListener(signal: string, handler: () => void): void;
  exit(code: number): never;
}

interface ProcessLike {
  on(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
  exit(code: number): never;
}

const deno = (globalThis as { Deno?: DenoLike }).Deno;
const process = (globalThis as { process?: ProcessLike }).process;

/** Whether this runtime can listen for signals and exit (Deno, Bun, Node). */
export const canListen: boolean = typeof deno?.addSignalListener ===
    "function" || typeof process?.on === "function";

/** Listens for `signal`; returns what stops listening. */
export function onSignal(signal: string, handler: () => void): () => void {
  if (deno !== undefined && typeof deno.addSignalListener === "function") {
    deno.addSignalListener(signal, handler);
    return () => deno.removeSignalListener(signal, handler);
  }
  process!.on(signal, handler);
  return () => process!.off(signal, handler);
}

/** Ends the process with `code`. */
export function exit(code: number): never {
  if (deno !== undefined && typeof deno.exit === "function") deno.exit(code);
  return process!.exit(code);
}

/**
 * Stops a server: Deno's `shutdown()` and Bun's `stop()` let the requests in
 * flight finish; a Node server closes its idle connections at once and its
 * others when their response is sent. Resolves when it stopped.
 */
export function stopServer(server: StoppableServer): Promise<void> {
  if ("shutdown" in server && typeof server.shutdown === "function") {
    return server.shutdown();
  }
  if ("stop" in server && typeof server.stop === "function") {
    return Promise.resolve(server.stop(false)).then(() => {});
  }
  const node = server as Extract<StoppableServer, { close: unknown }>;
  return new Promise<void>((resolve, reject) => {
    // A keep-alive connection whose response was still being written when
    // close() was called stays open once idle: close those as they go idle.
    const sweep = setInterval(() => node.closeIdleConnections?.(), 25);
    node.close((error) => {
      clearInterval(sweep);
      // Closing a server that was not listening is not a failure here.
      if (
        error === undefined ||
        (error as { code?: string }).code === "ERR_SERVER_NOT_RUNNING"
      ) resolve();
      else reject(error);
    });
    node.closeIdleConnections?.();
  });
}

/** Ends what `stopServer` still waits for: a Node server's open connections. */
export function forceStopServer(server: StoppableServer): void {
  if ("stop" in server && typeof server.stop === "function") {
    server.stop(true);
  } else if ("closeAllConnections" in server) {
    server.closeAllConnections?.();
  }
}

/** Whether `value` looks like a server of one of the three runtimes. */
export function isServer(value: unknown): value is StoppableServer {
  const server = value as Record<string, unknown> | null;
  return typeof server === "object" && server !== null &&
    (typeof server.shutdown === "function" ||
      typeof server.stop === "function" ||
      typeof server.close === "function");
}
