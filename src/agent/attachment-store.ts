import { createHash } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Result } from '../cni/result.js';
import { sweepTempFiles, writeFileAtomic } from '../util/atomic-file.js';
import type { PodIdentity } from './api.js';

/**
 * One record per attachment (containerId, ifName), written before any kernel object is made
 * ("pending") and again when the ADD completed ("ready"). After a crash, every kernel object and
 * reservation can be traced to a record, or is an orphan GC may remove.
 */
export interface AttachmentRecord {
  containerId: string;
  ifName: string;
  network: string;
  netns: string;
  hostIf: string;
  state: 'pending' | 'ready';
  addresses: string[];
  /** The ADD result in the newest schema, set when ready. */
  result?: Result;
  pod?: PodIdentity;
  createdAt: string;
}

export function recordKey(r: { containerId: string; ifName: string }): string {
  return `${r.containerId}\u0000${r.ifName}`;
}

/** Both parts encoded: whatever a request carried, the name has no "/" and stays in the directory. */
function fileName(r: { containerId: string; ifName: string }): string {
  const readable = `${encodeURIComponent(r.containerId)}@${encodeURIComponent(r.ifName)}`;
  if (readable.length <= 200) return `${readable}.json`;
  return `${createHash('sha256').update(recordKey(r)).digest('hex')}.json`;
}

export class AttachmentStore {
  private readonly records = new Map<string, AttachmentRecord>();

  private constructor(private readonly dir: string) {}

  static async open(stateDir: string): Promise<AttachmentStore> {
    const dir = join(stateDir, 'attachments');
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await sweepTempFiles(dir);
    const store = new AttachmentStore(dir);
    for (const name of await fs.readdir(dir)) {
      if (!name.endsWith('.json')) continue;
      const text = await fs.readFile(join(dir, name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      try {
        const rec = JSON.parse(text) as AttachmentRecord;
        if (typeof rec.containerId === 'string' && typeof rec.ifName === 'string') store.records.set(recordKey(rec), rec);
      } catch {
        // A record is replaced atomically, so this is damage from outside; GC can only trust the kernel.
        await fs.rm(join(dir, name), { force: true });
      }
    }
    return store;
  }

  get(key: { containerId: string; ifName: string }): AttachmentRecord | undefined {
    return this.records.get(recordKey(key));
  }

  has(key: { containerId: string; ifName: string }): boolean {
    return this.records.has(recordKey(key));
  }

  list(): AttachmentRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  put(rec: AttachmentRecord): void {
    writeFileAtomic(join(this.dir, fileName(rec)), JSON.stringify(rec) + '\n');
    this.records.set(recordKey(rec), rec);
  }

  remove(key: { containerId: string; ifName: string }): void {
    rmSync(join(this.dir, fileName(key)), { force: true });
    this.records.delete(recordKey(key));
  }
}
