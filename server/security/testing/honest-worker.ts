// An honest Node worker in its own process (the coordinator's event loop is then the coordinator's
// alone, as in the field). Usage: node --import tsx honest-worker.ts <url>; runs until killed.

import { startNodeWorker } from '../../../shared/training/node-worker.ts';

const w = await startNodeWorker(process.argv[2]!, { minBackoffMs: 50, maxBackoffMs: 500 });
process.once('SIGTERM', () => void w.stop().then(() => process.exit(0)));
await w.done;
