import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FILESTORE_CRASH_POINTS, FileStore, type FileStoreCrashPoint } from '../src/datastore/file-store.js';
import type { WatchEvent } from '../src/datastore/store.js';
import type { KObject } from '../src/model/objects.js';
import { ROOT } from './helpers/env.js';

/**
 * The file datastore killed at every point of a write (a fault point per step, as the CNI crash
 * tests do): afterwards every reader and watcher sees the change exactly once or not at all,
 * the store takes the next write at once, and revisions are never reused. And the lock recovers
 * from whatever a dead writer left.
 */
const WORKER = join(ROOT, 'build', 'test', 'helpers', 'store-crash-worker.js');
const pod = (name: string, labels: Record<string, string> = {}): KObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels } });

function crashingWrite(dir: string, op: string, name: string, point: FileStoreCrashPoint): Promise<{ signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [WORKER, dir, op, name], { env: { ...process.env, WEFT_TEST_FILESTORE_CRASH: point }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (_code, signal) => resolve({ signal, out }));
  });
}

/** Events from `from` until `until()` says enough, then 300 ms more (a duplicate would show). */
async function collect(store: FileStore, from: number, until: () => number, timeoutMs = 8000): Promise<WatchEvent[]> {
  const ac = new AbortController();
  const got: WatchEvent[] = [];
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let settle: NodeJS.Timeout | undefined;
  try {
    for await (const ev of store.watch('Pod', from, ac.signal)) {
      got.push(ev);
      if (got.length >= until() && !settle) settle = setTimeout(() => ac.abort(), 300);
    }
  } finally {
    clearTimeout(timer);
    clearTimeout(settle);
  }
  return got;
}

const text = (e: WatchEvent): string => (e.type === 'REJECTED' ? `REJECTED ${e.rejected.name}` : `${e.type} ${e.object.metadata.name} ${JSON.stringify(e.object.metadata.labels ?? {})} @${e.revision}`);

describe('file datastore: a writer killed at every step', () => {
  for (const point of FILESTORE_CRASH_POINTS) {
    for (const op of ['create', 'update', 'delete'] as const) {
      it(`${op}, killed at ${point}: watchers see it exactly once or not at all; the next write goes through with the next revision`, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'weft-fcrash-'));
        try {
          const a = FileStore.open(dir);
          await a.create(pod('p', { v: '1' }));
          await a.create(pod('other'));
          const start = (await a.list('Pod')).revision;
          let expectedEvents = Number.POSITIVE_INFINITY;
          const watching = collect(a, start, () => expectedEvents);
          const r = await crashingWrite(dir, op, op === 'create' ? 'q' : 'p', point);
          assert.equal(r.signal, 'SIGKILL', `the writer died at ${point} (${r.out})`);
          // Another client, as another agent: reads, then writes, at once.
          const b = FileStore.open(dir);
          const t0 = Date.now();
          const after = await b.list('Pod');
          assert.ok(Date.now() - t0 < 5000, 'the dead writer\'s lock did not hold the store');
          const committed = point !== 'lock-taken';
          const names = after.items.map((o) => `${o.metadata.name}${JSON.stringify(o.metadata.labels ?? {})}`).sort();
          const want = !committed ? ['other{}', 'p{"v":"1"}'] : op === 'create' ? ['other{}', 'p{"v":"1"}', 'q{"v":"new"}'] : op === 'update' ? ['other{}', 'p{"v":"2"}'] : ['other{}'];
          assert.deepEqual(names, want);
          assert.equal(after.revision, start + (committed ? 1 : 0), 'the list is at the committed revision');
          assert.deepEqual(after.rejected, []);
          expectedEvents = committed ? 2 : 1;
          const z = await b.create(pod('z'));
          assert.equal(Number(z.metadata.resourceVersion), after.revision + 1, 'the next write takes the next revision: none reused');
          const events = await watching;
          const expected = [
            ...(committed ? [`${op === 'create' ? 'ADDED q {"v":"new"}' : op === 'update' ? 'MODIFIED p {"v":"2"}' : 'DELETED p {"v":"1"}'} @${start + 1}`] : []),
            `ADDED z {} @${after.revision + 1}`,
          ];
          assert.deepEqual(events.map(text), expected, 'a watcher from before the crash saw every committed change exactly once');
          assert.deepEqual(readdirSync(join(dir, 'events')).filter((f) => f.startsWith('.')), [], 'no temporary files left');
          await a.close();
          await b.close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  }
});

describe('file datastore: what a crash or a person leaves behind', () => {
  const withStore = async (fn: (dir: string, s: FileStore) => Promise<void>): Promise<void> => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-fleft-'));
    try {
      const s = FileStore.open(dir);
      await s.create(pod('p'));
      await fn(dir, s);
      await s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('a lock file that is empty, garbage, or names a dead pid is broken; a live one is respected', async () => {
    for (const content of ['', 'garbage\n', '999999\n', `999999 12345 ${'a'.repeat(16)}\n`]) {
      await withStore(async (dir, s) => {
        writeFileSync(join(dir, 'lock'), content);
        const old = (Date.now() - 10_000) / 1000;
        utimesSync(join(dir, 'lock'), old, old);
        const t0 = Date.now();
        await s.create(pod(`after-${content.length}`));
        assert.ok(Date.now() - t0 < 3000, `lock ${JSON.stringify(content)} broken in ${Date.now() - t0} ms`);
        assert.equal(existsSync(join(dir, 'lock')), false, 'released');
      });
    }
    await withStore(async (dir, s) => {
      // A fresh unreadable lock may be a writer of an older format mid-write: waited for, briefly.
      writeFileSync(join(dir, 'lock'), '');
      const t0 = Date.now();
      await s.create(pod('later'));
      assert.ok(Date.now() - t0 >= 1500, 'a fresh unreadable lock is given its grace');
    });
  });

  it('an empty event file past the revision (a power loss without ordering) is set aside; the store goes on', async () => {
    await withStore(async (dir, s) => {
      const rev = (await s.list('Pod')).revision;
      writeFileSync(join(dir, 'events', `${String(rev + 1).padStart(16, '0')}.json`), '');
      const z = await s.create(pod('z'));
      assert.equal(Number(z.metadata.resourceVersion), rev + 1);
      assert.ok(readdirSync(join(dir, 'events')).some((f) => f.endsWith('.unreadable')));
      assert.deepEqual((await s.list('Pod')).items.map((o) => o.metadata.name).sort(), ['p', 'z']);
    });
  });

  it('a zero-length object file is left out and reported; the kind stays readable', async () => {
    await withStore(async (dir, s) => {
      writeFileSync(join(dir, 'objects', 'Pod', 'default', 'empty.json'), '');
      const l = await s.list('Pod');
      assert.deepEqual(l.items.map((o) => o.metadata.name), ['p']);
      assert.deepEqual(l.rejected, [{ kind: 'Pod', name: 'empty', namespace: 'default', reason: 'the file is empty' }]);
    });
  });
});
