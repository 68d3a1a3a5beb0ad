// Entry of one `flockctl worker --threads N` loop in a worker thread: the TypeScript loader is
// registered per thread (a parent's --import does not reach worker threads), then worker.ts runs.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
