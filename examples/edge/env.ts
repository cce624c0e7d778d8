// The types the edge app and its debug routes share: what the host passes as
// `env`, and the app's Hono environment.

import type { BackgroundTasksEnv } from "@background/tasks/hono";

/** An HTTP API the app calls: on Workers a service binding, elsewhere `fetch`. */
export interface Api {
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

/** What the host passes as `env`. */
export interface Bindings {
  /** The email and order API that background tasks report to. */
  API: Api;
}

/** The Hono environment of this app: its bindings, and `c.var.tasks`. */
export type AppEnv = BackgroundTasksEnv & { Bindings: Bindings };
