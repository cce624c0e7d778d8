// Files on disk, written so that a crash never leaves half a file: every
// write goes to a temporary name in the same folder, is flushed, then renamed
// over the final name (a rename within one file system is atomic).
//
// DATA_DIR/
//   photos/<uuid>/original.jpg|png, meta.json, 150.jpg, 300.jpg, 600.jpg
//   photos/<uuid>/queued            durable mode: the id of its queued task
//   photos/.incoming-<uuid>/        an upload being received, then committed
//                                   (renamed whole)
//   outbox/<order uuid>.eml         confirmation emails (the default transport)
//
// Every temporary name holds ".tmp-" (or starts with ".incoming-"); at
// start, what a crash left under those names is removed from every folder
// the demo writes (`PhotoStore.init`, `removeTemporaryFiles`).
//   orders.db                       SQLite
//   tasks.sqlite                    durable mode on Deno KV: the task queue

import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";

/** The only id format the server makes and accepts: `crypto.randomUUID()`. */
const UUID =
  /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Whether `id` is a lowercase version 4 UUID, the only ids used as file names. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

/**
 * What an interrupted upload or write leaves is removed at start once it is
 * this old, in ms: younger, it may belong to another process that shares the
 * DATA_DIR (durable mode) and is writing it now.
 */
const LEFTOVER_AGE = 60_000;

/** The widths of the thumbnails made for every photo, in pixels. */
export const THUMBNAIL_WIDTHS = [150, 300, 600] as const;

/** One of {@linkcode THUMBNAIL_WIDTHS}. */
export type ThumbnailWidth = typeof THUMBNAIL_WIDTHS[number];

/** The image formats accepted for upload; thumbnails keep the original's format. */
export type ImageType = "jpeg" | "png";

/** Where a photo is in its life. */
export type PhotoStatus = "processing" | "ready" | "failed";

/** What `meta.json` holds for each photo. */
export interface PhotoMeta {
  id: string;
  status: PhotoStatus;
  type: ImageType;
  /** As the header declares them (the decode confirms them). */
  width: number;
  height: number;
  createdAt: string;
  /** The uploaded file's name, cut to 80 characters. */
  name?: string;
  /** The original's size in bytes. */
  bytes?: number;
  /** JPEG scans (1 for a PNG), from the header. */
  scans?: number;
  /** The decode work the header declares (image_header.ts, `decodeWork`). */
  work?: number;
  /** Tries of its thumbnails so far. */
  attempts?: number;
  /** Why it failed, when it did. */
  error?: string;
  /** When its status last changed. */
  updatedAt?: string;
}

/**
 * An upload being received into `photos/.incoming-<id>/`: its bytes are
 * written as they arrive, flushed to disk every {@linkcode SYNC_EVERY}
 * bytes (so that the flush before the 201 has little left to do, whatever
 * the size), then committed as a photo folder by one rename.
 */
export interface IncomingPhoto {
  /** Appends bytes to the original. */
  write(chunk: Uint8Array): Promise<void>;
  /** Flushes the original, writes `meta.json`, and renames the folder to the photo's id. */
  commit(meta: PhotoMeta): Promise<void>;
  /** Removes what was received. Never throws. */
  discard(): Promise<void>;
}

/** Bytes written between two flushes of an incoming upload: 1 MiB. */
export const SYNC_EVERY = 1 << 20;

const EXTENSIONS: Record<ImageType, string> = { jpeg: "jpg", png: "png" };

/** The MIME type of each accepted image format. */
export const CONTENT_TYPES: Record<ImageType, string> = {
  jpeg: "image/jpeg",
  png: "image/png",
};

/**
 * Writes `data` to `path` atomically: to a temporary sibling first, flushed
 * to disk, then renamed over `path`. Readers see the old file or the new one,
 * never a part of it. The temporary file is removed if anything fails.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
): Promise<void> {
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    // `flush`: fsync before close (Deno and Bun honour it), in one call
    // rather than open, write, sync and close each crossing to an I/O thread.
    await writeFile(temporary, data, { flag: "wx", flush: true });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The photo files under `DATA_DIR/photos`. Ids must pass {@linkcode isUuid}. */
export class PhotoStore {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, "photos");
  }

  /**
   * Creates the folder, and removes what an interrupted upload or write left
   * (once it is a minute old: another process may be writing it).
   */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    for (const entry of await readdir(this.root, { withFileTypes: true })) {
      if (entry.name.startsWith(".incoming-")) {
        await removeLeftover(join(this.root, entry.name));
      } else if (entry.isDirectory() && isUuid(entry.name)) {
        for (const file of await readdir(join(this.root, entry.name))) {
          if (file.includes(".tmp-")) {
            await removeLeftover(join(this.root, entry.name, file));
          }
        }
      }
    }
  }

  /**
   * Starts receiving a new photo's original into a hidden folder. Commit it
   * or discard it.
   */
  async receive(id: string): Promise<IncomingPhoto> {
    const incoming = join(this.root, `.incoming-${id}`);
    await mkdir(incoming);
    const part = join(incoming, `original.tmp-${crypto.randomUUID()}`);
    let file: FileHandle | undefined;
    try {
      file = await open(part, "wx");
    } catch (error) {
      await rm(incoming, { recursive: true, force: true });
      throw error;
    }
    const handle = file;
    let unsynced = 0;
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    };
    return {
      write: async (chunk) => {
        for (let offset = 0; offset < chunk.length;) {
          const { bytesWritten } = await handle.write(
            chunk,
            offset,
            chunk.length - offset,
          );
          offset += bytesWritten;
        }
        unsynced += chunk.length;
        if (unsynced >= SYNC_EVERY) {
          unsynced = 0;
          await handle.datasync();
        }
      },
      commit: async (meta) => {
        if (meta.id !== id) {
          throw new TypeError(
            `Cannot commit photo ${id}: 'meta.id' is ${
              JSON.stringify(meta.id)
            }`,
          );
        }
        await handle.datasync();
        await close();
        await rename(part, join(incoming, `original.${EXTENSIONS[meta.type]}`));
        await writeFileAtomic(
          join(incoming, "meta.json"),
          JSON.stringify(meta),
        );
        await rename(incoming, this.#dir(id));
      },
      discard: async () => {
        await close().catch(() => {});
        await rm(incoming, { recursive: true, force: true }).catch(() => {});
      },
    };
  }

  /**
   * Stores a new photo as one unit: the original and its `meta.json` are
   * written to a hidden folder that is then renamed to the photo's id, so a
   * photo folder is either complete or absent.
   */
  async create(meta: PhotoMeta, original: Uint8Array): Promise<void> {
    const incoming = join(this.root, `.incoming-${meta.id}`);
    await mkdir(incoming);
    try {
      await writeFileAtomic(
        join(incoming, `original.${EXTENSIONS[meta.type]}`),
        original,
      );
      await writeFileAtomic(join(incoming, "meta.json"), JSON.stringify(meta));
      await rename(incoming, this.#dir(meta.id));
    } catch (error) {
      await rm(incoming, { recursive: true, force: true });
      throw error;
    }
  }

  /** The photo's metadata, or `undefined` if there is no such photo. */
  async meta(id: string): Promise<PhotoMeta | undefined> {
    try {
      return JSON.parse(
        await readFile(join(this.#dir(id), "meta.json"), "utf8"),
      ) as PhotoMeta;
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      throw error;
    }
  }

  /** Replaces the photo's metadata atomically. */
  async saveMeta(meta: PhotoMeta): Promise<void> {
    await writeFileAtomic(
      join(this.#dir(meta.id), "meta.json"),
      JSON.stringify(meta),
    );
  }

  /**
   * Durable mode: records that the photo's thumbnails are in the task queue,
   * under the task id `enqueue` returned. Photos still "processing" without
   * it are queued at the next start.
   */
  async markQueued(id: string, taskId: string): Promise<void> {
    await writeFileAtomic(join(this.#dir(id), "queued"), taskId);
  }

  /** Whether {@linkcode PhotoStore.markQueued} was called for the photo. */
  async isQueued(id: string): Promise<boolean> {
    try {
      await stat(join(this.#dir(id), "queued"));
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return false;
      throw error;
    }
  }

  /** Removes a photo and all its files; nothing happens if there is none. */
  async remove(id: string): Promise<void> {
    await rm(this.#dir(id), { recursive: true, force: true });
  }

  /** Every stored photo's metadata. */
  async list(): Promise<PhotoMeta[]> {
    const photos: PhotoMeta[] = [];
    for (const name of await readdir(this.root)) {
      if (!isUuid(name)) continue;
      const meta = await this.meta(name);
      if (meta !== undefined) photos.push(meta);
    }
    return photos;
  }

  /** The original upload's bytes. */
  async original(meta: PhotoMeta): Promise<Uint8Array> {
    return await readFile(this.originalPath(meta));
  }

  /** The original upload's path. */
  originalPath(meta: PhotoMeta): string {
    return join(this.#dir(meta.id), `original.${EXTENSIONS[meta.type]}`);
  }

  /** Where one thumbnail is (or will be) stored. */
  thumbnailPath(meta: PhotoMeta, width: ThumbnailWidth): string {
    return this.#thumbnail(meta, width);
  }

  /** Stores one thumbnail atomically. */
  async saveThumbnail(
    meta: PhotoMeta,
    width: ThumbnailWidth,
    bytes: Uint8Array,
  ): Promise<void> {
    await writeFileAtomic(this.#thumbnail(meta, width), bytes);
  }

  /** One thumbnail's bytes, or `undefined` if it is not there (yet). */
  async thumbnail(
    meta: PhotoMeta,
    width: ThumbnailWidth,
  ): Promise<Uint8Array<ArrayBuffer> | undefined> {
    try {
      return await readFile(this.#thumbnail(meta, width));
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      throw error;
    }
  }

  #thumbnail(meta: PhotoMeta, width: ThumbnailWidth): string {
    return join(this.#dir(meta.id), `${width}.${EXTENSIONS[meta.type]}`);
  }

  // The only place a path is made from an id: anything but a UUID is refused,
  // so no id can name a path outside the folder.
  #dir(id: string): string {
    if (!isUuid(id)) {
      throw new TypeError(
        `'id' must be a UUID, received ${JSON.stringify(id)}`,
      );
    }
    return join(this.root, id);
  }
}

/**
 * Removes the temporary files (`*.tmp-*`) a crash left in `dir`, once they
 * are a minute old; does nothing if `dir` does not exist. Returns how many.
 */
export async function removeTemporaryFiles(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return 0;
    throw error;
  }
  let removed = 0;
  for (const name of names) {
    if (name.includes(".tmp-") && await removeLeftover(join(dir, name))) {
      removed++;
    }
  }
  return removed;
}

/** Removes a leftover file or folder once it is {@linkcode LEFTOVER_AGE} old. */
async function removeLeftover(path: string): Promise<boolean> {
  try {
    if (Date.now() - (await stat(path)).mtimeMs < LEFTOVER_AGE) return false;
  } catch (error) {
    // Gone already: its writer finished.
    if ((error as { code?: string }).code === "ENOENT") return false;
    throw error;
  }
  await rm(path, { recursive: true, force: true });
  return true;
}
