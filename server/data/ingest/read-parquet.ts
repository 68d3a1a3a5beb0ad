// Parquet reader over hyparquet: one row group in memory at a time (hyparquet-compressors for
// snappy, gzip, zstd, brotli, lz4). List columns come back as arrays, flattened by the caller.

import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema, type SchemaTree } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { dataError } from './data-error.ts';
import type { Source, SourceRow } from './source.ts';

/** A column whose leaf values are unsigned 8-bit integers (directly or as list elements). */
function isByteColumn(node: SchemaTree): boolean {
  let leaf = node;
  while (leaf.children.length === 1) leaf = leaf.children[0]!;
  const e = leaf.element;
  const lt = e.logical_type;
  return e.converted_type === 'UINT_8' || (lt?.type === 'INTEGER' && lt.bitWidth === 8 && !lt.isSigned);
}

export async function openParquet(path: string, file: string): Promise<Source> {
  let buffer, metadata;
  try {
    buffer = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    throw dataError(file, null, null, `not a readable Parquet file (${(e as Error).message})`);
  }
  const file_ = buffer;
  const md = metadata;
  const tree = parquetSchema(md).children;
  const columns = tree.map((c) => c.element.name);
  return {
    format: 'parquet',
    file,
    columns,
    rowCount: Number(md.num_rows),
    byteColumns: new Set(tree.filter(isByteColumn).map((c) => c.element.name)),
    async *rows(): AsyncIterable<SourceRow> {
      let start = 0;
      for (const group of md.row_groups) {
        const end = start + Number(group.num_rows);
        let rows: unknown[][] = [];
        try {
          await parquetRead({ file: file_, metadata: md, columns, rowStart: start, rowEnd: end, compressors, onComplete: (r) => (rows = r) });
        } catch (e) {
          throw dataError(file, `rows ${start + 1}-${end}`, null, `the row group cannot be read (${(e as Error).message})`);
        }
        for (let i = 0; i < rows.length; i++) yield { cells: rows[i]!, where: `row ${start + i + 1}` };
        start = end;
      }
    },
  };
}
