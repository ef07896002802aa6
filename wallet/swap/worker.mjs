// Worker bootstrap: registers tsx in this thread (bin/satroute.js registers it only in the
// main thread; under `node --import tsx` this is a harmless second registration), then loads
// the TypeScript worker body.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./worker.ts', import.meta.url).href);
