// `flockctl export ID --out DIR`: the newest verified checkpoint (or --version N) as model.json +
// weights.bin that tf.loadLayersModel reads, the metric history as CSV, and preprocessing.json:
// how raw rows become model inputs (column order, one-hot categories, standardisation, scales)
// and what the outputs mean (class names).

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError, type ApiClient } from './api-client.ts';

export async function exportCommand(api: ApiClient, id: string, out: string, version?: string): Promise<void> {
  if (version !== undefined && !/^\d+$/.test(version)) throw new CliError(`--version must be a checkpoint version number; got ${version}.`);
  const job = encodeURIComponent(id);
  const q = version !== undefined ? `?version=${version}` : '';
  const model = await api.json<{ weightsManifest: { paths: string[] }[] }>('GET', `api/jobs/${job}/model/model.json${q}`);
  const weightsName = model.weightsManifest[0]?.paths[0];
  if (!weightsName) throw new CliError(`job ${id}: the checkpoint's model.json lists no weights file.`);
  process.stderr.write(`downloading ${weightsName}...\n`);
  const weights = new Uint8Array(await (await api.request('GET', `api/jobs/${job}/model/${weightsName}`)).arrayBuffer());
  for (const g of model.weightsManifest) g.paths = ['weights.bin'];
  const data = await api.json<unknown>('GET', `api/jobs/${job}/data`);
  const history = await (await api.request('GET', `api/jobs/${job}/history.csv`, { admin: true })).text();
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'weights.bin'), weights);
  await writeFile(path.join(out, 'model.json'), JSON.stringify(model));
  await writeFile(path.join(out, 'preprocessing.json'), JSON.stringify(data, null, 2));
  await writeFile(path.join(out, 'history.csv'), history);
  const v = /weights-v(\d+)\.bin/.exec(weightsName)?.[1];
  console.log(`exported job ${id}${v ? ` checkpoint v${Number(v)}` : ''} to ${out}: model.json, weights.bin (${(weights.byteLength / 1024).toFixed(0)} KiB), preprocessing.json, history.csv`);
}
