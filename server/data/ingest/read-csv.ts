// CSV reader: a header row, then one example per record, streamed with csv-parse. Records are
// checked against the header's width here, so a ragged row is refused with its 1-based line.

import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';
import { dataError } from './data-error.ts';
import type { Source, SourceRow } from './source.ts';

/** A fresh parse of the file; stopping early (break, a throw) destroys the parser and the file stream. */
function parser(path: string) {
  const p = parse({ info: true, bom: true, trim: true, skip_empty_lines: true, relax_column_count: true });
  const file = createReadStream(path);
  p.once('close', () => file.destroy());
  return file.pipe(p);
}

export async function openCsv(path: string, file: string): Promise<Source> {
  let columns: string[] | null = null;
  for await (const { record } of parser(path) as AsyncIterable<{ record: string[] }>) {
    columns = record;
    break;
  }
  if (columns === null) throw dataError(file, null, null, 'the file is empty (a CSV needs a header row)');
  const header = columns;
  const twice = header.find((c, i) => header.indexOf(c) !== i);
  if (twice !== undefined) throw dataError(file, 'line 1', twice, 'the header names this column twice');
  return {
    format: 'csv',
    file,
    columns: header,
    rowCount: null,
    byteColumns: new Set(),
    async *rows(): AsyncIterable<SourceRow> {
      let first = true;
      for await (const { record, info } of parser(path) as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
        if (first) {
          first = false;
          continue;
        }
        const where = `line ${info.lines}`;
        if (record.length !== header.length) {
          throw dataError(file, where, null, `the row has ${record.length} cells but the header has ${header.length}`);
        }
        yield { cells: record, where };
      }
    },
  };
}
