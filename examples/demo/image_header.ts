// What an upload declares, read from its bytes as they arrive, before any
// decode: the format (by magic bytes), the dimensions, and the structure
// that drives imagescript's decode cost (for a JPEG: the frame type, the
// components and their sampling, the number of scans; for a PNG: bit depth,
// colour type, interlacing). A scanner sees each byte once and keeps a few
// counters, so checking a 10 MB upload costs a linear pass and no copy.
//
// The budget rule (`decodeWork`) follows what bench/demo_decode.ts measures:
// imagescript's decode time grows with the pixels, and for a progressive
// JPEG with the scans too (each scan is a pass over every block of the
// image): 0.17 to 0.18 ns per pixel per scan against 80 to 111 ns per pixel
// for a whole photo-like decode, so a scan costs 1/460 to 1/510 of a pixel.
// The rule counts a scan as 1/100 of a pixel: on the safe side, since the
// measured scans are those of a flat grey image, the cheapest there are.

/** The image formats the demo accepts. */
export type ImageFormat = "jpeg" | "png";

/** What a header says about an image; see {@linkcode ImageScanner.finish}. */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** JPEG: 1 (grey), 3 (YCbCr) or 4 (CMYK); PNG: the channels of its colour type. */
  components: number;
  /** JPEG: the SOF2 frame; PNG: Adam7 interlacing. */
  progressive: boolean;
  /** JPEG: start-of-scan markers; PNG: 1 (7 passes when interlaced). */
  scans: number;
}

/** Why an upload is refused before any decode. */
export class ImageRefusal extends Error {
  /** 415: not a JPEG or PNG at all; 422: one whose structure is refused. */
  readonly status: 415 | 422;

  constructor(status: 415 | 422, message: string) {
    super(message);
    this.name = "ImageRefusal";
    this.status = status;
  }
}

/** How many scans a JPEG may have at most, whatever its size (libjpeg's own limit for its tools is 100). */
export const MAX_SCANS = 100;
/** How much one scan of a progressive JPEG weighs against one pixel in {@linkcode decodeWork}. */
export const SCANS_PER_PIXEL = 100;

/**
 * The decode work an image declares, in pixel-equivalents:
 * `width × height × (1 + scans / 100)` for a JPEG, and
 * `width × height` (twice that at 16 bits) for a PNG.
 *
 * @example A 12 MP progressive photo and a crafted 1000-scan JPEG
 * ```ts
 * import { decodeWork } from "./image_header.ts";
 * import assert from "node:assert/strict";
 *
 * const photo = { format: "jpeg", width: 4000, height: 3000, components: 3, progressive: true, scans: 10 } as const;
 * assert.equal(decodeWork(photo), 13_200_000);
 * const crafted = { ...photo, width: 2000, height: 1500, scans: 1000 };
 * assert.equal(decodeWork(crafted), 33_000_000);
 * ```
 */
export function decodeWork(header: ImageHeader, bitDepth = 8): number {
  const pixels = header.width * header.height;
  if (header.format === "png") return pixels * (bitDepth > 8 ? 2 : 1);
  return Math.round(pixels * (1 + header.scans / SCANS_PER_PIXEL));
}

/**
 * Reads an image's header and structure from its bytes, chunk by chunk.
 * `push` each chunk as it arrives; `finish` returns the header once the
 * last byte is in, or throws an {@linkcode ImageRefusal} saying what is
 * wrong. `push` throws as soon as the bytes cannot be a JPEG or PNG the demo
 * accepts (the caller stops reading then).
 *
 * @example Read a PNG's header
 * ```ts
 * import { ImageScanner } from "./image_header.ts";
 * import assert from "node:assert/strict";
 *
 * const png = Uint8Array.from([
 *   0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, // signature
 *   0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 2, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0, // IHDR 2x1 grey
 *   0, 0, 0, 10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x60, 0, 0, 0, 4, 0, 0, 0, 0, 0, // IDAT
 *   0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82, // IEND
 * ]);
 * const scanner = new ImageScanner();
 * scanner.push(png.subarray(0, 20));
 * scanner.push(png.subarray(20));
 * assert.deepEqual(scanner.finish(), {
 *   format: "png", width: 2, height: 1, components: 1, progressive: false, scans: 1,
 * });
 * ```
 */
export class ImageScanner {
  #format: ImageFormat | undefined;
  #magic: number[] = [];
  #jpeg: JpegScanner | undefined;
  #png: PngScanner | undefined;
  /** Bytes seen so far. */
  bytes = 0;

  /** The format, once the first bytes told it. */
  get format(): ImageFormat | undefined {
    return this.#format;
  }

  /** Feeds the next bytes. @throws {ImageRefusal} They cannot be an accepted image. */
  push(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    let start = 0;
    if (this.#format === undefined) {
      while (this.#magic.length < 8 && start < chunk.length) {
        this.#magic.push(chunk[start++]);
        const format = sniff(this.#magic);
        if (format === null) throw notAnImage();
        if (format !== undefined) {
          this.#format = format;
          if (format === "jpeg") {
            this.#jpeg = new JpegScanner();
            this.#jpeg.push(Uint8Array.from(this.#magic));
          } else {
            this.#png = new PngScanner();
            this.#png.push(Uint8Array.from(this.#magic));
          }
          break;
        }
      }
      if (this.#format === undefined) return;
    }
    const rest = start === 0 ? chunk : chunk.subarray(start);
    if (this.#jpeg) this.#jpeg.push(rest);
    else this.#png!.push(rest);
  }

  /**
   * The header, once every byte was pushed.
   *
   * @throws {ImageRefusal} 415 for anything but a JPEG or PNG; 422 for a
   * JPEG or PNG that is cut short, malformed, of a kind the decoder does not
   * read, or too small to hold the image it declares.
   */
  finish(): ImageHeader {
    if (this.#jpeg) return this.#jpeg.finish();
    if (this.#png) return this.#png.finish();
    throw notAnImage();
  }

  /** The PNG's bit depth (8 for a JPEG), for {@linkcode decodeWork}. */
  get bitDepth(): number {
    return this.#png?.bitDepth ?? 8;
  }
}

function notAnImage(): ImageRefusal {
  return new ImageRefusal(415, "is not a JPEG or PNG image");
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The format the first bytes start; `undefined`: not enough bytes yet; `null`: neither. */
function sniff(bytes: number[]): ImageFormat | undefined | null {
  const jpeg = [0xff, 0xd8, 0xff];
  const isPrefix = (magic: number[]) =>
    bytes.every((byte, i) => i >= magic.length || magic[i] === byte);
  if (isPrefix(jpeg)) return bytes.length >= 3 ? "jpeg" : undefined;
  if (isPrefix(PNG_SIGNATURE)) return bytes.length >= 8 ? "png" : undefined;
  return null;
}

function corrupt(format: ImageFormat, what: string): ImageRefusal {
  return new ImageRefusal(
    422,
    `is not a readable ${format.toUpperCase()} image: ${what}`,
  );
}

interface FrameComponent {
  h: number;
  v: number;
}

/** The JPEG scanner's states (plain numbers: Node strips types, not enums). */
const J = {
  /** Expecting 0xFF before a marker. */
  Marker: 0,
  /** After 0xFF: the marker byte (more 0xFF are fill). */
  MarkerCode: 1,
  /** The two length bytes of a segment. */
  Length: 2,
  /** A segment's body; kept for SOF and SOS, skipped otherwise. */
  Body: 3,
  /** Entropy-coded data after a SOS header. */
  Entropy: 4,
  /** After 0xFF in entropy-coded data. */
  EntropyFF: 5,
  /** After EOI: anything more is ignored. */
  Done: 6,
} as const;

/**
 * The JPEG half of {@linkcode ImageScanner}: walks the marker segments and
 * the entropy-coded data between them (where 0xFF is followed by 0x00, a
 * restart marker, or the next marker).
 */
class JpegScanner {
  #state: number = J.Marker;
  #marker = 0;
  #length: number[] = [];
  #left = 0;
  #body: number[] = [];
  #keep = false;
  #soi = false;
  #frame:
    | {
      width: number;
      height: number;
      progressive: boolean;
      components: FrameComponent[];
    }
    | undefined;
  #scans = 0;
  #entropyBytes = 0;
  #eoi = false;

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      switch (this.#state) {
        case J.Marker:
          if (byte !== 0xff) {
            throw corrupt("jpeg", "a marker segment is followed by stray data");
          }
          this.#state = J.MarkerCode;
          break;
        case J.MarkerCode:
          if (byte !== 0xff) this.#onMarker(byte);
          break;
        case J.Length:
          this.#length.push(byte);
          if (this.#length.length === 2) {
            const length = (this.#length[0] << 8) | this.#length[1];
            if (length < 2) throw corrupt("jpeg", "a segment length below 2");
            this.#left = length - 2;
            this.#body = [];
            this.#state = J.Body;
            if (this.#left === 0) this.#endSegment();
          }
          break;
        case J.Body: {
          // Skip what is not kept in one step.
          const take = Math.min(this.#left, chunk.length - i);
          if (this.#keep) {
            for (let k = 0; k < take; k++) this.#body.push(chunk[i + k]);
          }
          this.#left -= take;
          i += take - 1;
          if (this.#left === 0) this.#endSegment();
          break;
        }
        case J.Entropy: {
          // Most bytes: find the next 0xFF at native speed.
          const next = chunk.indexOf(0xff, i);
          const end = next === -1 ? chunk.length : next;
          this.#entropyBytes += end - i;
          i = end;
          if (next !== -1) this.#state = J.EntropyFF;
          break;
        }
        case J.EntropyFF:
          if (byte === 0x00 || (byte >= 0xd0 && byte <= 0xd7)) {
            this.#entropyBytes += 2;
            this.#state = J.Entropy;
          } else if (byte !== 0xff) {
            this.#onMarker(byte);
          }
          break;
        case J.Done:
          return;
      }
    }
  }

  #onMarker(marker: number): void {
    this.#marker = marker;
    if (!this.#soi) {
      if (marker !== 0xd8) throw corrupt("jpeg", "no start-of-image marker");
      this.#soi = true;
      this.#state = J.Marker;
      return;
    }
    if (marker === 0xd9) {
      this.#eoi = true;
      this.#state = J.Done;
      return;
    }
    if (
      marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01
    ) {
      throw corrupt(
        "jpeg",
        `marker 0x${marker.toString(16)} where a segment should start`,
      );
    }
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 &&
      marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) {
        throw corrupt(
          "jpeg",
          `frame type SOF${
            marker - 0xc0
          } (lossless, hierarchical or arithmetic-coded), which the decoder does not read`,
        );
      }
      if (this.#frame !== undefined) {
        throw corrupt("jpeg", "more than one frame header");
      }
    }
    if (marker === 0xda) {
      if (this.#frame === undefined) {
        throw corrupt("jpeg", "image data before the frame header");
      }
      if (++this.#scans > MAX_SCANS) {
        throw new ImageRefusal(
          422,
          `has more than ${MAX_SCANS} scans; the most accepted is ${MAX_SCANS}`,
        );
      }
    }
    this.#keep = isFrame || marker === 0xda;
    this.#length = [];
    this.#state = J.Length;
  }

  #endSegment(): void {
    const body = this.#body;
    if (this.#marker >= 0xc0 && this.#marker <= 0xc2) {
      if (body.length < 6) throw corrupt("jpeg", "a short frame header");
      const count = body[5];
      if (body.length < 6 + 3 * count || ![1, 3, 4].includes(count)) {
        throw corrupt("jpeg", `a frame header with ${count} components`);
      }
      if (body[0] !== 8) {
        throw corrupt("jpeg", `${body[0]}-bit samples; the decoder reads 8`);
      }
      const components: FrameComponent[] = [];
      for (let c = 0; c < count; c++) {
        const sampling = body[6 + 3 * c + 1];
        const h = sampling >> 4;
        const v = sampling & 15;
        if (h < 1 || h > 4 || v < 1 || v > 4) {
          throw corrupt("jpeg", "a component's sampling factor out of 1 to 4");
        }
        components.push({ h, v });
      }
      const height = (body[1] << 8) | body[2];
      const width = (body[3] << 8) | body[4];
      if (width === 0 || height === 0) {
        throw corrupt("jpeg", `a declared size of ${width}x${height}`);
      }
      this.#frame = {
        width,
        height,
        progressive: this.#marker === 0xc2,
        components,
      };
    }
    if (this.#marker === 0xda) {
      this.#state = J.Entropy;
      return;
    }
    this.#state = J.Marker;
  }

  finish(): ImageHeader {
    const frame = this.#frame;
    if (frame === undefined) {
      throw corrupt("jpeg", "no frame header (truncated or corrupt)");
    }
    if (this.#scans === 0) {
      throw corrupt("jpeg", "no image data (truncated or corrupt)");
    }
    if (!this.#eoi) {
      throw corrupt("jpeg", "no end-of-image marker (truncated)");
    }
    // Each block of each component needs at least one bit in its first DC
    // scan: fewer bytes than that cannot hold the image declared.
    const hMax = Math.max(...frame.components.map((c) => c.h));
    const vMax = Math.max(...frame.components.map((c) => c.v));
    let blocks = 0;
    for (const { h, v } of frame.components) {
      blocks += Math.ceil(Math.ceil((frame.width * h) / hMax) / 8) *
        Math.ceil(Math.ceil((frame.height * v) / vMax) / 8);
    }
    if (this.#entropyBytes * 8 < blocks) {
      throw corrupt(
        "jpeg",
        `its ${this.#entropyBytes} bytes of image data cannot hold the ${frame.width}x${frame.height} pixels it declares (truncated)`,
      );
    }
    return {
      format: "jpeg",
      width: frame.width,
      height: frame.height,
      components: frame.components.length,
      progressive: frame.progressive,
      scans: this.#scans,
    };
  }
}

/** Channels per colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA). */
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Valid bit depths per colour type. */
const PNG_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
/** Deflate expands at most about 1032 to 1. */
const DEFLATE_MAX_RATIO = 1032;

/** The PNG half of {@linkcode ImageScanner}: walks the chunks. */
class PngScanner {
  #signature = 0;
  /** The 8 bytes of a chunk's length and type. */
  #head: number[] = [];
  /** Bytes of the current chunk's data and CRC still to come. */
  #left = 0;
  #type = "";
  #ihdr: number[] = [];
  #header:
    | {
      width: number;
      height: number;
      depth: number;
      color: number;
      interlace: number;
    }
    | undefined;
  #idatBytes = 0;
  #iend = false;
  bitDepth = 8;

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      if (this.#iend) return;
      if (this.#signature < 8) {
        if (chunk[i] !== PNG_SIGNATURE[this.#signature++]) {
          throw corrupt("png", "a broken signature");
        }
        continue;
      }
      if (this.#left === 0) {
        this.#head.push(chunk[i]);
        if (this.#head.length === 8) this.#startChunk();
        continue;
      }
      const take = Math.min(this.#left, chunk.length - i);
      const dataLeft = this.#left - 4; // the CRC's 4 bytes come last
      if (this.#type === "IHDR" && dataLeft > 0) {
        for (let k = 0; k < Math.min(take, dataLeft); k++) {
          this.#ihdr.push(chunk[i + k]);
        }
      }
      if (this.#type === "IDAT") {
        this.#idatBytes += Math.max(0, Math.min(take, dataLeft));
      }
      this.#left -= take;
      i += take - 1;
      if (this.#left === 0) this.#endChunk();
    }
  }

  #startChunk(): void {
    const h = this.#head;
    const length = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
    this.#type = String.fromCharCode(h[4], h[5], h[6], h[7]);
    this.#head = [];
    if (length > 0x7fffffff) throw corrupt("png", "a chunk length over 2^31");
    if (this.#header === undefined && this.#type !== "IHDR") {
      throw corrupt("png", "the first chunk is not IHDR");
    }
    if (
      this.#type === "IHDR" && (this.#header !== undefined || length !== 13)
    ) {
      throw corrupt("png", "a second or malformed IHDR chunk");
    }
    this.#left = length + 4;
  }

  #endChunk(): void {
    if (this.#type === "IHDR") {
      const b = this.#ihdr;
      const width = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
      const height = ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0;
      const [depth, color, compression, filter, interlace] = b.slice(8, 13);
      if (width === 0 || height === 0) {
        throw corrupt("png", `a declared size of ${width}x${height}`);
      }
      if (!(PNG_DEPTHS[color] ?? []).includes(depth)) {
        throw corrupt(
          "png",
          `bit depth ${depth} with colour type ${color}, which PNG does not allow`,
        );
      }
      if (compression !== 0 || filter !== 0 || interlace > 1) {
        throw corrupt(
          "png",
          "an unknown compression, filter or interlace method",
        );
      }
      this.#header = { width, height, depth, color, interlace };
      this.bitDepth = depth;
    } else if (this.#type === "IEND") {
      this.#iend = true;
    }
  }

  finish(): ImageHeader {
    const header = this.#header;
    if (header === undefined) {
      throw corrupt("png", "no IHDR chunk (truncated or corrupt)");
    }
    if (!this.#iend) throw corrupt("png", "no IEND chunk (truncated)");
    const channels = PNG_CHANNELS[header.color];
    const rowBytes = 1 +
      Math.ceil((header.width * channels * header.depth) / 8);
    const raw = rowBytes * header.height;
    if (this.#idatBytes * DEFLATE_MAX_RATIO < raw) {
      throw corrupt(
        "png",
        `its ${this.#idatBytes} bytes of image data cannot hold the ${header.width}x${header.height} pixels it declares (truncated)`,
      );
    }
    return {
      format: "png",
      width: header.width,
      height: header.height,
      components: channels,
      progressive: header.interlace === 1,
      scans: 1,
    };
  }
}
