// The module a WorkerPool runs: resizes a JPEG in a worker thread, off the
// server's event loop, and hands the encoded bytes back without a copy.

import { Image } from "imagescript";
import { transfer, type Transferred } from "@background/tasks/worker";

export interface Input {
  bytes: Uint8Array;
  width: number;
}

export default async function thumbnail(
  { bytes, width }: Input,
): Promise<Transferred<Uint8Array>> {
  const image = await Image.decode(bytes);
  image.resize(width, Image.RESIZE_AUTO);
  const out = await image.encodeJPEG(80);
  return transfer(out, [out]); // moved, or copied where Bun refuses to move it
}
