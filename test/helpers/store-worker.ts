/**
 * One "agent" for the multi-process datastore test: increments a shared counter N times with
 * compare-and-swap on resourceVersion, retrying on Conflict.
 *   node store-worker.js DIR COUNT
 */
import { FileStore } from '../../src/datastore/file-store.js';
import { isStoreError } from '../../src/datastore/store.js';
import type { KObject } from '../../src/model/objects.js';

type Counter = KObject & { spec: { value: number; by: string[] } };

const [dir, count] = process.argv.slice(2);
const store = FileStore.open(dir as string);
let conflicts = 0;
for (let i = 0; i < Number(count); i++) {
  for (;;) {
    const c = (await store.get<Counter>('Counter', 'shared')) as Counter;
    try {
      await store.update({ ...c, spec: { value: c.spec.value + 1, by: [...c.spec.by.slice(-5), String(process.pid)] } });
      break;
    } catch (err) {
      if (!isStoreError(err, 'Conflict')) throw err;
      conflicts++;
    }
  }
}
process.stdout.write(JSON.stringify({ conflicts }) + '\n');
await store.close();
