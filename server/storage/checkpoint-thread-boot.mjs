// Worker-thread entry: registers tsx's loader in this thread (Node 20 does not apply `--import`
// hooks to a worker's entry module), then loads the TypeScript checkpoint thread.
import { register } from 'tsx/esm/api';

register();
await import('./checkpoint-thread.ts');
