// The second manager of bench/events.ts: a copy of the library's src/ and
// mod.ts in a temporary folder whose `dispatchTaskEvent` dispatches the
// runtime's plain `new Event(type)` at the points where the manager
// dispatches its `TaskEvent`s, and returns.

import {
  cpSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The line of `dispatchTaskEvent` the copy puts the plain dispatch before. */
const ANCHOR = "  const { status, result } = task;\n";
const PLAIN = "  target.dispatchEvent(new Event(type));\n  return;\n";

/** A copy of the manager that dispatches plain `Event`s. */
export interface PlainEventsCopy {
  /** The URL of the copy's mod.ts. */
  module: string;
  /** Deletes the copy. */
  remove(): void;
}

/** Makes the copy of the library at `root` (a folder URL ending in "/"). */
export function copyWithPlainEvents(root: URL): PlainEventsCopy {
  const dir = mkdtempSync(join(tmpdir(), "bench-events-"));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    cpSync(new URL("src", root), join(dir, "src"), { recursive: true });
    cpSync(new URL("mod.ts", root), join(dir, "mod.ts"));
    const events = join(dir, "src", "core", "_events.ts");
    const source = readFileSync(events, "utf8");
    if (source.split(ANCHOR).length !== 2) {
      throw new Error(
        `src/core/_events.ts no longer has the line ${
          JSON.stringify(ANCHOR)
        } once: update ANCHOR in bench/_events_copy.ts`,
      );
    }
    writeFileSync(events, source.replace(ANCHOR, PLAIN + ANCHOR));
    return { module: pathToFileURL(join(dir, "mod.ts")).href, remove };
  } catch (error) {
    remove();
    throw error;
  }
}
