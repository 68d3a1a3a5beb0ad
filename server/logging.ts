// Structured logs (pino): one JSON object per line (time, level, msg and the fields a call passes),
// for log shippers; the same records made readable by pino-pretty when stdout is a terminal.
// Start-up failures stay one plain line on stderr (server/main.ts), whatever the format.

import { pino, type Logger as Pino } from 'pino';
import pretty from 'pino-pretty';
import type { Logger } from './jobs/job-runtime.ts';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface StructuredLogger extends Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  readonly pino: Pino;
}

/**
 * format: 'pretty' (colours when stdout is a TTY) or 'json'; default: pretty on a TTY, else json.
 * `destination`: where JSON lines go (tests); default stdout, written synchronously so nothing is
 * lost when the process exits right after a line (shutdown).
 */
export function createLogger(opts: { format?: LogFormat | undefined; level?: string | undefined; destination?: NodeJS.WritableStream | undefined } = {}): StructuredLogger {
  const format = opts.format ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const base = { name: 'flock', level: opts.level ?? 'info', base: { pid: process.pid } };
  const stream =
    format === 'pretty'
      ? pretty({ colorize: Boolean(process.stdout.isTTY), sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name', destination: opts.destination ?? 1 })
      : (opts.destination ?? pino.destination({ dest: 1, sync: true }));
  const p = pino(base, stream as pino.DestinationStream);
  return {
    pino: p,
    info: (msg, fields) => (fields ? p.info(fields, msg) : p.info(msg)),
    warn: (msg, fields) => (fields ? p.warn(fields, msg) : p.warn(msg)),
  };
}
