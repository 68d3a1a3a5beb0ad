// Entry of the checkpoint thread: packs and hashes checkpoints (checkpoint-encoding.ts) and checks
// stored ones, so the coordinator's event loop never hashes megabytes. Holds no state between
// messages. Messages: { id, kind: 'encode', cp } -> { id, ok: true, value: EncodedCheckpoint } (its
// two buffers transferred back); { id, kind: 'digest', parts } -> { id, ok: true, value: string[] }
// (SHA-256, hex, in order); a failure -> { id, ok: false, message }.

import { parentPort } from 'node:worker_threads';
import { encodeCheckpoint, sha256, type CheckpointInput } from './checkpoint-encoding.ts';

export type ThreadJob = { kind: 'encode'; cp: CheckpointInput } | { kind: 'digest'; parts: (Uint8Array | string)[] };

type ThreadRequest = ThreadJob & { id: number };

const port = parentPort!;

port.on('message', (m: ThreadRequest) => {
  try {
    if (m.kind === 'digest') {
      port.postMessage({ id: m.id, ok: true, value: m.parts.map(sha256) });
      return;
    }
    const encoded = encodeCheckpoint(m.cp);
    const transfer = new Set([encoded.weights.buffer, encoded.optimizer.buffer]) as Set<ArrayBuffer>;
    port.postMessage({ id: m.id, ok: true, value: encoded }, [...transfer]);
  } catch (err) {
    port.postMessage({ id: m.id, ok: false, message: (err as Error).message });
  }
});
