// Serves a fetch handler on 127.0.0.1 with the runtime's own server:
// Deno.serve, Bun.serve, or @hono/node-server on Node. Returns the server,
// which gracefulShutdown() knows how to stop, and the port it listens on.

import type { StoppableServer } from "@background/tasks/shutdown";

type Fetch = (request: Request) => Response | Promise<Response>;

interface BunServe {
  serve(options: { hostname: string; port: number; fetch: Fetch }): {
    port: number;
    stop(closeActiveConnections?: boolean): Promise<void>;
  };
}

export async function listen(
  fetch: Fetch,
  port: number,
): Promise<{ server: StoppableServer; port: number }> {
  const hostname = "127.0.0.1";
  const bun = (globalThis as { Bun?: BunServe }).Bun;
  if (bun !== undefined) {
    const server = bun.serve({ hostname, port, fetch });
    return { server, port: server.port };
  }
  if (typeof Deno !== "undefined") {
    const server = Deno.serve({ hostname, port, onListen() {} }, fetch);
    return { server, port: server.addr.port };
  }
  const { serve } = await import("@hono/node-server");
  return await new Promise((resolve) => {
    const server = serve(
      { fetch, hostname, port },
      (info) => resolve({ server: server as StoppableServer, port: info.port }),
    );
  });
}
