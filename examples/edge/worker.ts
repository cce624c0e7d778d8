// The app as a Cloudflare Worker (module syntax). Bindings: `API`, a service
// binding to the email and order API.
//
//   wrangler dev examples/edge/worker.ts

import { app } from "./app.ts";

export default {
  fetch: app.fetch,
};
