// Arrow IPC reader (file or stream format, .arrow/.feather/.ipc) over apache-arrow's
// RecordBatchReader: one record batch in memory at a time.

import { open } from 'node:fs/promises';
import { DataType, RecordBatchReader, type Field } from 'apache-arrow';
import { dataError } from './data-error.ts';
import type { Source, SourceRow } from './source.ts';

function isByteField(f: Field): boolean {
  let t: DataType = f.type;
  while ((DataType.isList(t) || DataType.isFixedSizeList(t)) && t.children[0]) t = t.children[0].type;
  return DataType.isInt(t) && t.bitWidth === 8 && !t.isSigned;
}

async function reader(path: string, file: string) {
  const fh = await open(path);
  try {
    const r = await RecordBatchReader.from(fh);
    return { r: await r.open(), fh };
  } catch (e) {
    await fh.close().catch(() => {});
    throw dataError(file, null, null, `not a readable Arrow IPC file or stream (${(e as Error).message})`);
  }
}

export async function openArrow(path: string, file: string): Promise<Source> {
  const { r, fh } = await reader(path, file);
  const fields = r.schema.fields;
  await fh.close().catch(() => {});
  return {
    format: 'arrow',
    file,
    columns: fields.map((f) => f.name),
    rowCount: null,
    byteColumns: new Set(fields.filter(isByteField).map((f) => f.name)),
    async *rows(): AsyncIterable<SourceRow> {
      const { r, fh } = await reader(path, file);
      try {
        let row = 0;
        for await (const batch of r) {
          const vectors = fields.map((_, i) => batch.getChildAt(i)!);
          for (let i = 0; i < batch.numRows; i++) {
            row++;
            yield { cells: vectors.map((v) => v.get(i)), where: `row ${row}` };
          }
        }
      } finally {
        await fh.close().catch(() => {});
      }
    },
  };
}
