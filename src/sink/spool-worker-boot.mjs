// Entry of the read spool's worker thread: a worker does not inherit the main thread's TypeScript
// loader, so when the worker's module is TypeScript (run from source), tsx is registered here first.
import { workerData } from 'node:worker_threads';

if (workerData.entry.endsWith('.ts')) (await import('tsx/esm/api')).register();
await import(workerData.entry);
