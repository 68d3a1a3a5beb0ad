// Runs the real coordinator CLI (server/main.ts) as a child process for journeys and benchmarks:
// parses the printed URLs, can kill it (SIGKILL or SIGTERM) and start it again on the same port.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface CoordinatorProcess {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  readonly proc: ChildProcess;
  readonly logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startCoordinatorProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<CoordinatorProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ready = new Promise<{ url: string; token: string }>((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer): void => {
      const text = b.toString();
      logs.push(...text.split('\n').map((l) => l.slice(0, 500)).filter(Boolean));
      out += text;
      const url = /Volunteer page:\s+(http:\/\/\S+?)\/\s/.exec(out);
      const token = /Admin token:\s+(\S+)/.exec(out);
      if (url && token) resolve({ url: url[1]!, token: token[1]! });
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (b: Buffer) => logs.push(...b.toString().split('\n').map((l) => l.slice(0, 500)).filter(Boolean)));
    void exited.then((code) => reject(new Error(`coordinator exited (${code}) before it was ready:\n${logs.slice(-20).join('\n')}`)));
    setTimeout(() => reject(new Error(`coordinator not ready after ${timeoutMs} ms:\n${logs.slice(-20).join('\n')}`)), timeoutMs).unref();
  });
  const { url, token } = await ready;
  return {
    url,
    port: Number(new URL(url).port),
    token,
    proc,
    logs,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}
