import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

/**
 * The result cache (libcni's cniCacheV1 format): written after a whole-list ADD, read for CHECK
 * and DEL, removed after a DEL that succeeded, and scanned by GC for attachments to collect.
 */
export interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  /** base64 of the conflist bytes, as Go encodes []byte. */
  config: string;
  netns?: string;
  cniArgs: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
  result: unknown;
}

export class ResultCache {
  constructor(private readonly dir: string) {}

  private file(network: string, containerId: string, ifName: string): string {
    return join(this.dir, 'results', `${network}-${containerId}-${ifName}`);
  }

  async write(entry: CacheEntry): Promise<void> {
    await fs.mkdir(join(this.dir, 'results'), { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file(entry.networkName, entry.containerId, entry.ifName), JSON.stringify(entry));
  }

  async read(network: string, containerId: string, ifName: string): Promise<CacheEntry | undefined> {
    const text = await fs.readFile(this.file(network, containerId, ifName), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const v = JSON.parse(text) as Partial<CacheEntry> & Record<string, unknown>;
      if (v.kind === 'cniCacheV1') return v as CacheEntry;
      // A bare legacy result.
      return { kind: 'cniCacheV1', containerId, ifName, networkName: network, config: '', cniArgs: [], capabilityArgs: {}, result: v };
    } catch {
      return undefined;
    }
  }

  async remove(network: string, containerId: string, ifName: string): Promise<void> {
    await fs.rm(this.file(network, containerId, ifName), { force: true });
  }

  /** Every cached attachment of `network`. */
  async list(network: string): Promise<CacheEntry[]> {
    const dir = join(this.dir, 'results');
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    const out: CacheEntry[] = [];
    for (const n of names) {
      if (!n.startsWith(`${network}-`)) continue;
      const text = await fs.readFile(join(dir, n), 'utf8').catch(() => undefined);
      if (!text) continue;
      try {
        const v = JSON.parse(text) as CacheEntry;
        if (v.kind === 'cniCacheV1' && v.networkName === network) out.push(v);
      } catch {
        /* skip unreadable entries */
      }
    }
    return out;
  }
}
