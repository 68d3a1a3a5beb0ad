// What every reader yields: a table of named columns read row by row, any number of times (the
// ingest reads a source twice: statistics, then the store). Cells stay as the format gives them;
// cells.ts turns them into numbers. Also the format decision from a path (pure).

import type { DataFormat } from './data-section.ts';

/** One row: cells in `Source.columns` order; `where` names it for messages ("line 7", "row 7", a file). */
export interface SourceRow {
  readonly cells: readonly unknown[];
  readonly where: string;
}

export interface Source {
  readonly format: DataFormat;
  /** The file (or folder) as the user wrote it, for messages. */
  readonly file: string;
  readonly columns: readonly string[];
  /** Known without reading every row (Parquet, Arrow file, arrays, images); CSV and Arrow streams do not know. */
  readonly rowCount: number | null;
  /** Columns whose values are stored as uint8 by the format itself (pixels): they default to a scale of 1/255. */
  readonly byteColumns: ReadonlySet<string>;
  /** Where columns come from different files (npy, IDX): column -> file, for messages. */
  readonly columnFiles?: ReadonlyMap<string, string> | undefined;
  rows(): AsyncIterable<SourceRow>;
}

const EXTENSIONS: readonly (readonly [RegExp, DataFormat])[] = [
  [/\.csv$/i, 'csv'],
  [/\.parquet$/i, 'parquet'],
  [/\.(arrow|feather|ipc)$/i, 'arrow'],
  [/\.npz$/i, 'npz'],
  [/\.npy$/i, 'npy'],
  [/-ubyte(\.gz)?$/i, 'idx'],
];

/** The format of a path by its extension (a directory is an image folder); null when unknown. */
export function formatOf(path: string, isDirectory: boolean): DataFormat | null {
  if (isDirectory) return 'images';
  return EXTENSIONS.find(([re]) => re.test(path))?.[1] ?? null;
}
