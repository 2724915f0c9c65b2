import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'node:test';
import { runStoreContract } from './store.contract.js';
import { FileStore } from './file-store.js';

describe('FileStore (contract)', () => {
  runStoreContract({
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'weft-fstore-'));
      const a = FileStore.open(dir);
      const b = FileStore.open(dir);
      return {
        a,
        b,
        cleanup: async () => {
          await a.close();
          await b.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
    async compact({ a }, revision) {
      writeFileSync(join((a as FileStore).dir, 'compacted'), String(revision));
    },
    async putRaw({ a }, kind, name, namespace, bytes) {
      const dir = join((a as FileStore).dir, 'objects', kind, namespace ?? '_');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}.json`), bytes);
    },
    rawWritesAreEvents: false,
  });
});
