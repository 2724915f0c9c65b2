/**
 * A writer of the file datastore that dies inside its write: WEFT_TEST_FILESTORE_CRASH names the
 * point (file-store.ts FILESTORE_CRASH_POINTS), where the store kills its own process with SIGKILL.
 *   node store-crash-worker.js DIR update|create|delete NAME
 */
import { FileStore } from '../../src/datastore/file-store.js';
import type { KObject } from '../../src/model/objects.js';

const [dir, op, name] = process.argv.slice(2) as [string, string, string];
const store = FileStore.open(dir);
const pod = (labels: Record<string, string>): KObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels } });
if (op === 'create') await store.create(pod({ v: 'new' }));
else if (op === 'update') {
  const cur = (await store.get<KObject>('Pod', name, 'default')) as KObject;
  await store.update({ ...cur, metadata: { ...cur.metadata, labels: { v: '2' } } });
} else await store.delete('Pod', name, 'default');
process.stdout.write('survived\n');
