// The one small adapter between SqliteBackend and the runtime's SQLite:
// `node:sqlite` (DatabaseSync) on Deno and Node, `bun:sqlite` (Database) on
// Bun. Both are synchronous and close to each other; this file gives them
// one shape (prepared statements cached by their SQL, `get` returning
// `undefined` for no row) and is the only place that knows which runtime
// runs. The modules are loaded by `openSqlite`, never at import.

/** A row as SQLite returns it: column name to value. */
export type Row = Record<string, unknown>;

/** A value SQLite takes as a parameter. */
export type Param = string | number | null;

/** An open database, whichever module opened it. */
export interface SqliteDatabase {
  /** Runs one statement; returns how many rows it changed. */
  run(sql: string, ...params: Param[]): number;
  /** The first row of a query, or `undefined`. */
  get(sql: string, ...params: Param[]): Row | undefined;
  /** Every row of a query. */
  all(sql: string, ...params: Param[]): Row[];
  /** Closes the database. */
  close(): void;
}

interface Statement {
  run(...params: Param[]): { changes: number | bigint };
  get(...params: Param[]): Row | null | undefined;
  all(...params: Param[]): Row[];
}

interface Native {
  prepare(sql: string): Statement;
  close(): void;
}

/** Which module opens the file on this runtime. */
export function sqliteModule(): "bun:sqlite" | "node:sqlite" {
  return (globalThis as { Bun?: unknown }).Bun !== undefined
    ? "bun:sqlite"
    : "node:sqlite";
}

/** Opens (or creates) the file with the runtime's SQLite module. */
export async function openSqlite(path: string): Promise<SqliteDatabase> {
  let native: Native;
  if (sqliteModule() === "bun:sqlite") {
    // Bun's own module, through Bun's synchronous `import.meta.require`: a
    // specifier other runtimes (and their type checkers) do not know.
    const meta = import.meta as ImportMeta & {
      require(specifier: string): {
        Database: new (path: string, options: object) => Native;
      };
    };
    const { Database } = meta.require("bun:sqlite");
    native = new Database(path, { create: true, strict: true });
  } else {
    const { DatabaseSync } = await import("node:sqlite");
    native = new DatabaseSync(path) as unknown as Native;
  }
  return new Database(native);
}

class Database implements SqliteDatabase {
  readonly #native: Native;
  readonly #statements: Map<string, Statement> = new Map();

  constructor(native: Native) {
    this.#native = native;
  }

  #prepare(sql: string): Statement {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#native.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  run(sql: string, ...params: Param[]): number {
    return Number(this.#prepare(sql).run(...params).changes);
  }

  get(sql: string, ...params: Param[]): Row | undefined {
    return this.#prepare(sql).get(...params) ?? undefined;
  }

  all(sql: string, ...params: Param[]): Row[] {
    return this.#prepare(sql).all(...params);
  }

  close(): void {
    this.#statements.clear();
    this.#native.close();
  }
}
