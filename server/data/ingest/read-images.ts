// Image-folder reader: <dir>/<class>/<image>.png|jpg; the sub-folder name is the label. Decodes
// with pngjs / jpeg-js to the model's H x W x C (C=1: luminance of RGB, C=3: RGB), one image at a time.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { dataError } from './data-error.ts';
import type { Source, SourceRow } from './source.ts';

export interface ImageShape {
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
}

const IMAGE = /\.(png|jpe?g)$/i;

function decode(bytes: Buffer, name: string): { width: number; height: number; rgba: Uint8Array } {
  if (/\.png$/i.test(name)) {
    const png = PNG.sync.read(bytes);
    return { width: png.width, height: png.height, rgba: png.data };
  }
  const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
  return { width: img.width, height: img.height, rgba: img.data };
}

/** RGBA pixels to `channels` per pixel: 1 = round(0.299 R + 0.587 G + 0.114 B) (ITU-R BT.601), 3 = RGB. */
export function toChannels(rgba: Uint8Array, channels: 1 | 3): Uint8Array {
  const n = rgba.length / 4;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    const r = rgba[4 * i]!, g = rgba[4 * i + 1]!, b = rgba[4 * i + 2]!;
    if (channels === 1) out[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else out.set([r, g, b], 3 * i);
  }
  return out;
}

export async function openImages(dir: string, file: string, shape: ImageShape): Promise<Source> {
  const classes = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).sort();
  const images: { label: string; rel: string }[] = [];
  for (const c of classes) {
    const names = (await readdir(path.join(dir, c))).filter((n) => IMAGE.test(n)).sort();
    for (const n of names) images.push({ label: c, rel: `${c}/${n}` });
  }
  return {
    format: 'images',
    file,
    columns: ['image', 'label'],
    rowCount: images.length,
    byteColumns: new Set(['image']),
    async *rows(): AsyncIterable<SourceRow> {
      for (const { label, rel } of images) {
        const where = `image ${rel}`;
        let img;
        try {
          img = decode(await readFile(path.join(dir, rel)), rel);
        } catch (e) {
          throw dataError(file, where, null, `the image cannot be decoded (${(e as Error).message})`);
        }
        if (img.width !== shape.width || img.height !== shape.height) {
          throw dataError(file, where, null, `the image is ${img.width}x${img.height} (WxH) but the model takes ${shape.width}x${shape.height}`);
        }
        yield { cells: [toChannels(img.rgba, shape.channels), label], where };
      }
    },
  };
}
