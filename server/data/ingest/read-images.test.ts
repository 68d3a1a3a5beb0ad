// Image folders through the ingest, PNGs by pngjs's encoder and JPEGs by jpeg-js's: the folder is
// the label, pixels are stored uint8 at 1/255, RGB -> grey by luminance for C=1, and a wrong-sized
// image is refused by name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { ingestOk, refused, request, withTmp } from './testing.ts';

type Rgb = readonly [number, number, number];

function png(file: string, w: number, h: number, pixel: (i: number) => Rgb) {
  const img = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) img.data.set([...pixel(i), 255], 4 * i);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, PNG.sync.write(img));
}

function jpg(file: string, w: number, h: number, rgb: Rgb) {
  const data = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set([...rgb, 255], 4 * i);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, jpeg.encode({ width: w, height: h, data }, 100).data);
}

const grey = ([r, g, b]: Rgb) => Math.round(0.299 * r + 0.587 * g + 0.114 * b);

test('images: PNG folders per class, RGB kept for C=3, luminance for C=1, classes sorted by name', () =>
  withTmp(async (dir) => {
    const colour = (k: number) => (i: number): Rgb => [(i * 40 + k) % 256, (i * 90 + 3 * k) % 256, 255 - i * 10];
    png(path.join(dir, 'train/dog/b.png'), 3, 2, colour(1));
    png(path.join(dir, 'train/dog/a.png'), 3, 2, colour(2));
    png(path.join(dir, 'train/cat/z.png'), 3, 2, colour(3));
    writeFileSync(path.join(dir, 'train/cat/notes.txt'), 'not an image');
    png(path.join(dir, 'test/cat/1.png'), 3, 2, colour(4));
    const data = { train: 'train', test: 'test' };
    const rgb = await ingestOk(request(dir, { data, model: { inputShape: [2, 3, 3], outputUnits: 2 } }));
    assert.deepEqual(rgb.meta.spec.features, { dtype: 'uint8', scale: 1 / 255 });
    assert.deepEqual(rgb.meta.labels, { columns: ['label'], classNames: ['cat', 'dog'] });
    assert.deepEqual(rgb.rows('train').y, [0, 1, 1], 'cat/z, dog/a, dog/b');
    const pixels = (k: number) => Array.from({ length: 6 }, (_, i) => colour(k)(i));
    assert.deepEqual(rgb.rows('train').x, [3, 2, 1].map((k) => pixels(k).flat()));
    const g = await ingestOk(request(dir, { data, model: { inputShape: [2, 3, 1], outputUnits: 2 } }));
    assert.deepEqual(g.rows('test').x, [pixels(4).map(grey)]);
    assert.deepEqual(g.rows('test').y, [0]);
  }));

test('images: JPEG decoded by jpeg-js; digit folders map by identity', () =>
  withTmp(async (dir) => {
    jpg(path.join(dir, 'train/0/a.jpg'), 8, 8, [200, 200, 200]);
    jpg(path.join(dir, 'train/2/a.jpeg'), 8, 8, [10, 10, 10]);
    jpg(path.join(dir, 'train/2/b.JPG'), 8, 8, [128, 128, 128]);
    const r = await ingestOk(request(dir, { data: { train: 'train', validationSplit: 0.4 }, model: { inputShape: [8, 8, 1], outputUnits: 3 } }));
    assert.deepEqual(r.meta.labels.classNames, ['0', '1', '2']);
    const all = [...r.rows('train').x, ...r.rows('test').x].map((x) => x.reduce((a, b) => a + b, 0) / x.length).sort((a, b) => a - b);
    [10, 128, 200].forEach((v, i) => assert.ok(Math.abs(all[i]! - v) <= 2, `mean pixel ${all[i]} should be about ${v}`));
  }));

test('images: a wrong-sized image is refused by its path; a file is not a folder', () =>
  withTmp(async (dir) => {
    png(path.join(dir, 'train/a/1.png'), 4, 4, () => [0, 0, 0]);
    png(path.join(dir, 'train/b/2.png'), 5, 4, () => [0, 0, 0]);
    await refused(request(dir, { data: { train: 'train' }, model: { inputShape: [4, 4, 1] } }),
      /^train, image b\/2\.png: the image is 5x4 \(WxH\) but the model takes 4x4\.$/);
    await refused(request(dir, { data: { train: 'train' }, model: { inputShape: [16] } }), /^train: an image folder needs a model input of \[H, W, 1\] or \[H, W, 3\], not \[16\]\.$/);
    await refused(request(dir, { data: { train: 'train/a/1.png', format: 'images' } }), /^train\/a\/1\.png: not a folder/);
  }));
