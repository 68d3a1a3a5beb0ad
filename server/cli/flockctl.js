#!/usr/bin/env node
// flockctl's executable: registers the TypeScript loader (tsx) and runs the command line in main.ts.
// Plain JS so `npx flockctl` works in a clone without a build step.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
