// DataError: the user's data cannot become a store. Its message is one sentence naming the file,
// the line/row or column, and the problem, fit to show the user as is.

export class DataError extends Error {
  override readonly name = 'DataError';
}

/** `file, line 5, column "age"` and the problem, as one sentence. */
export function dataError(file: string, where: string | null, column: string | null, problem: string): DataError {
  const at = [file, where, column === null ? null : `column "${column}"`].filter((s) => s !== null).join(', ');
  return new DataError(`${at}: ${problem}.`);
}
