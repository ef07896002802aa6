// Worker bootstrap for the budget race: registers tsx in this thread, then loads the body.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./budget-race-worker.ts', import.meta.url).href);
