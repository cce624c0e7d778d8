// The worker module of bench/demo_cancel.ts: decodes a JPEG with imagescript
// in a WorkerPool worker, as the demo did before its image processes.

import { Image } from "imagescript";

export default async function decode(bytes: Uint8Array): Promise<number> {
  return (await Image.decode(bytes)).width;
}
