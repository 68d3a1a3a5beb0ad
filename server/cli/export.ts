// `flockctl export ID --out DIR`: the newest verified checkpoint (or --version N) as model.json +
// weights.bin that tf.loadLayersModel reads, the metric history as CSV, and preprocessing.json:
// how raw rows become model inputs (column order, one-hot categories, standardisation, scales)
// and what the outputs mean (class names).

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError, type ApiClient } from './api-client.ts';

interface ModelJson {
  weightsManifest: { paths: string[] }[];
}

/** One checkpoint's model.json + weights.bin into `dir`; returns the version its weights file names. */
async function saveCheckpoint(api: ApiClient, job: string, query: string, dir: string): Promise<{ version: number | null; bytes: number }> {
  const model = await api.json<ModelJson>('GET', `api/jobs/${job}/model/model.json${query}`);
  const weightsName = model.weightsManifest[0]?.paths[0];
  if (!weightsName) throw new CliError(`job ${decodeURIComponent(job)}: the checkpoint's model.json lists no weights file.`);
  const weights = new Uint8Array(await (await api.request('GET', `api/jobs/${job}/model/${weightsName}`)).arrayBuffer());
  for (const g of model.weightsManifest) g.paths = ['weights.bin'];
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'weights.bin'), weights);
  await writeFile(path.join(dir, 'model.json'), JSON.stringify(model));
  const v = /v(\d+)\.bin$/.exec(weightsName)?.[1];
  return { version: v === undefined ? null : Number(v), bytes: weights.byteLength };
}

export async function exportCommand(api: ApiClient, id: string, out: string, version?: string): Promise<void> {
  if (version !== undefined && !/^\d+$/.test(version)) throw new CliError(`--version must be a checkpoint version number; got ${version}.`);
  const job = encodeURIComponent(id);
  const summary = await api.json<{ best: { version: number; metric: string; testAccuracy: number | null; testLoss: number } | null }>('GET', `api/jobs/${job}`);
  process.stderr.write('downloading the model...\n');
  const latest = await saveCheckpoint(api, job, version !== undefined ? `?version=${version}` : '', out);
  const data = await api.json<unknown>('GET', `api/jobs/${job}/data`);
  const history = await (await api.request('GET', `api/jobs/${job}/history.csv`, { admin: true })).text();
  await writeFile(path.join(out, 'preprocessing.json'), JSON.stringify(data, null, 2));
  await writeFile(path.join(out, 'history.csv'), history);
  const lines = [`exported job ${id} to ${out}:`, `  model.json + weights.bin   ${version !== undefined ? 'checkpoint' : 'newest checkpoint'} v${latest.version ?? '?'} (${(latest.bytes / 1024).toFixed(0)} KiB)`];
  // The best evaluated version is kept apart from the rotation: exported beside the newest when it differs.
  const best = summary.best;
  if (version === undefined && best && best.version !== latest.version) {
    await saveCheckpoint(api, job, '?which=best', path.join(out, 'best'));
    const score = best.metric === 'testAccuracy' && best.testAccuracy !== null ? `test accuracy ${(best.testAccuracy * 100).toFixed(2)}%` : `test loss ${best.testLoss.toPrecision(4)}`;
    lines.push(`  best/model.json + weights   best evaluated version v${best.version} (${score})`);
  }
  lines.push('  preprocessing.json          how raw rows become inputs, and the class names', '  history.csv                 metric history');
  console.log(lines.join('\n'));
}
