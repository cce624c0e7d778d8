// A pool of image processes: child processes of the server's own runtime
// (Deno or Bun) running image_process.ts, each doing one job at a time.
//
// Why processes and not the WorkerPool of @background/tasks/worker: a
// decode that must stop (its timeout ran out, an operator cancelled it, the
// server shuts down) has to stop using the CPU. `Worker.terminate()` does
// not stop a WebAssembly computation already running in that worker, on
// Deno 2.9 nor on Bun 1.4: a terminated decode went on burning a core for
// 16 to 20 s. SIGKILL stops a process at once, on both (bench/demo_cancel.ts
// measures both ways). A process also gives its memory back to the system
// when it ends, and on Deno runs with only the permissions it needs.
//
// The invariant: at most `size` processes exist and each runs at most one
// job; every `run()` settles exactly once: with the job's reply, with the
// job's error (a decode error: the image is bad), with an
// {@linkcode ImageProcessExit} (the process died: transient), or with the
// signal's reason (its process is killed first).

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { ThumbnailJob, ThumbnailResult } from "./image_job.ts";

/** Where image jobs run: processes, or the main thread (a benchmark knob). */
export interface ImagePool {
  run(
    job: ThumbnailJob,
    options?: { signal?: AbortSignal },
  ): Promise<ThumbnailResult>;
  close(): Promise<void>;
  /** The live processes, for `GET /tasks`. */
  readonly processes: { pid: number; busy: boolean }[];
}

/** A job's process died before it answered: a crash, a kill, out of memory. */
export class ImageProcessExit extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageProcessExit";
  }
}

/** Options for {@linkcode ImageProcesses}. */
export interface ImageProcessesOptions {
  /** How many processes at most. */
  size: number;
  /** The only folder the processes may write to (Deno enforces it). */
  dataDir: string;
}

interface Child {
  readonly process: ChildProcess;
  job: Job | undefined;
  /** The input of its last job: the next job for the same photo goes here. */
  input: string | undefined;
  output: string;
}

interface Job {
  readonly job: ThumbnailJob;
  readonly resolve: (value: ThumbnailResult) => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort?: () => void;
}

const SCRIPT = fileURLToPath(new URL("./image_process.ts", import.meta.url));
/** The repository root, where deno.json and node_modules are. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The command that starts an image process with this runtime. */
function command(dataDir: string): { file: string; args: string[] } {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (deno !== undefined) {
    return {
      file: deno.execPath(),
      // Reads anywhere (its modules, imagescript's WebAssembly), writes only
      // under DATA_DIR; FFI for imagescript's native encoder; `gc()` for
      // image_process.ts.
      args: [
        "run",
        "--v8-flags=--expose-gc",
        "--allow-read",
        `--allow-write=${dataDir}`,
        "--allow-env",
        "--allow-ffi",
        "--no-prompt",
        SCRIPT,
      ],
    };
  }
  return { file: process.execPath, args: [SCRIPT] }; // Bun: `Bun.gc()`
}

/** Runs image jobs in up to `size` child processes; see the module's header. */
export class ImageProcesses implements ImagePool {
  readonly #size: number;
  readonly #dataDir: string;
  readonly #children: Set<Child> = new Set();
  readonly #queue: Job[] = [];
  #closed = false;

  constructor(options: ImageProcessesOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(
        `Cannot create ImageProcesses: 'size' must be a positive integer, received ${options.size}`,
      );
    }
    this.#size = options.size;
    this.#dataDir = options.dataDir;
  }

  get processes(): { pid: number; busy: boolean }[] {
    return [...this.#children].map((child) => ({
      pid: child.process.pid ?? 0,
      busy: child.job !== undefined,
    }));
  }

  /**
   * Runs `job` in a process; waits in FIFO order when all are busy.
   * Aborting `signal` rejects with its reason: a waiting job leaves the
   * queue, a running one has its process killed (SIGKILL).
   */
  run(
    job: ThumbnailJob,
    options: { signal?: AbortSignal } = {},
  ): Promise<ThumbnailResult> {
    const signal = options.signal;
    if (this.#closed) {
      return Promise.reject(new Error("The image processes are closed"));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<
      ThumbnailResult
    >();
    const entry: Job = { job, resolve, reject, signal };
    if (signal !== undefined) {
      entry.onAbort = () => this.#abort(entry);
      signal.addEventListener("abort", entry.onAbort, { once: true });
    }
    this.#queue.push(entry);
    this.#pump();
    return promise;
  }

  /** Ends every process (SIGKILL for a busy one) and rejects what waits. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#queue.splice(0)) {
      this.#settle(entry, new DOMException("The pool closed", "AbortError"));
    }
    const exits: Promise<void>[] = [];
    for (const child of this.#children) {
      exits.push(
        new Promise((resolve) => child.process.once("close", () => resolve())),
      );
      if (child.job !== undefined) child.process.kill("SIGKILL");
      else child.process.stdin?.end();
    }
    await Promise.all(exits);
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const idle = [...this.#children].filter((child) =>
        child.job === undefined
      );
      const next = this.#queue[0];
      // The process that holds the photo's decoded original, if it is idle.
      let child = idle.find((c) => c.input === next.job.input) ?? idle[0];
      if (child === undefined) {
        if (this.#children.size >= this.#size) return;
        child = this.#start();
      }
      this.#queue.shift();
      child.job = next;
      child.input = next.job.input;
      child.process.stdin!.write(`${JSON.stringify(next.job)}\n`);
    }
  }

  #start(): Child {
    const { file, args } = command(this.#dataDir);
    const proc = spawn(file, args, {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    const child: Child = {
      process: proc,
      job: undefined,
      input: undefined,
      output: "",
    };
    this.#children.add(child);
    proc.stdout!.setEncoding("utf8");
    proc.stdout!.on("data", (text: string) => {
      child.output += text;
      let end: number;
      while ((end = child.output.indexOf("\n")) !== -1) {
        const line = child.output.slice(0, end);
        child.output = child.output.slice(end + 1);
        this.#reply(child, line);
      }
    });
    // A write to a process that just died: its exit handler settles the job.
    proc.stdin!.on("error", () => {});
    proc.on("error", (error) => this.#exited(child, error.message));
    proc.on(
      "exit",
      (code, signal) =>
        this.#exited(
          child,
          signal ? `killed by ${signal}` : `exit code ${code}`,
        ),
    );
    return child;
  }

  #reply(child: Child, line: string): void {
    const entry = child.job;
    if (entry === undefined) return;
    child.job = undefined;
    let reply: {
      ok: boolean;
      value?: ThumbnailResult;
      error?: { name: string; message: string };
    };
    try {
      reply = JSON.parse(line);
    } catch {
      reply = {
        ok: false,
        error: {
          name: "Error",
          message: `a malformed reply: ${line.slice(0, 80)}`,
        },
      };
    }
    if (reply.ok) this.#settle(entry, undefined, reply.value);
    else {
      const error = new Error(reply.error!.message);
      error.name = reply.error!.name;
      this.#settle(entry, error);
    }
    this.#pump();
  }

  #exited(child: Child, how: string): void {
    if (!this.#children.delete(child)) return;
    const entry = child.job;
    child.job = undefined;
    if (entry !== undefined) {
      this.#settle(
        entry,
        new ImageProcessExit(
          `The image process ${child.process.pid} ended (${how}) before it finished the job`,
        ),
      );
    }
    if (!this.#closed) this.#pump();
  }

  #abort(entry: Job): void {
    const queued = this.#queue.indexOf(entry);
    if (queued !== -1) this.#queue.splice(queued, 1);
    for (const child of this.#children) {
      if (child.job === entry) {
        // Gone from the pool now; its exit comes later and finds no job.
        child.job = undefined;
        this.#children.delete(child);
        child.process.kill("SIGKILL");
      }
    }
    this.#settle(entry, entry.signal!.reason);
    this.#pump();
  }

  #settle(entry: Job, error: unknown, value?: ThumbnailResult): void {
    if (entry.onAbort) {
      entry.signal!.removeEventListener("abort", entry.onAbort);
      entry.onAbort = undefined;
    }
    if (error !== undefined) entry.reject(error);
    else entry.resolve(value!);
  }
}
