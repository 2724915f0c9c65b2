import { promises as fs, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createFileExclusive, sweepTempFiles, writeFileAtomic } from '../util/atomic-file.js';

/**
 * IPAM state on disk, one file per reserved address (named by the address, as host-local does),
 * created with an atomic exclusive link() so a reservation either fully exists or not at all,
 * whenever the agent is killed. The round-robin cursor of each family is a separate small file.
 */
export interface ReservationOwner {
  containerId: string;
  ifName: string;
  network: string;
}

export interface StoredReservation {
  address: string;
  owner: ReservationOwner | undefined;
}

export class ReservationStore {
  private constructor(private readonly dir: string) {}

  static async open(stateDir: string): Promise<ReservationStore> {
    const dir = join(stateDir, 'ipam');
    await fs.mkdir(join(dir, 'reservations'), { recursive: true, mode: 0o700 });
    await sweepTempFiles(join(dir, 'reservations'));
    await sweepTempFiles(dir);
    return new ReservationStore(dir);
  }

  private file(address: string): string {
    return join(this.dir, 'reservations', address);
  }

  async loadAll(): Promise<StoredReservation[]> {
    const names = await fs.readdir(join(this.dir, 'reservations'));
    const out: StoredReservation[] = [];
    for (const name of names) {
      const text = await fs.readFile(this.file(name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      out.push({ address: name, owner: parseOwner(text) });
    }
    return out;
  }

  /** False when the address was already reserved on disk. */
  reserve(address: string, owner: ReservationOwner): boolean {
    const body = JSON.stringify({ ...owner, reservedAt: new Date().toISOString() }) + '\n';
    return createFileExclusive(this.file(address), body);
  }

  release(address: string): void {
    rmSync(this.file(address), { force: true });
  }

  async readCursor(family: 4 | 6): Promise<string | undefined> {
    const text = await fs.readFile(join(this.dir, `last-reserved-v${family}`), 'utf8').catch(() => undefined);
    return text?.trim() || undefined;
  }

  /**
   * The round-robin cursor is a hint: losing an update to a crash only moves where the next
   * scan starts. So it is written after the ADD answered, the latest value per family only.
   */
  writeCursorLater(family: 4 | 6, address: string): void {
    const first = !this.pendingCursors.has(family);
    this.pendingCursors.set(family, address);
    if (!first) return;
    setImmediate(() => {
      const latest = this.pendingCursors.get(family);
      this.pendingCursors.delete(family);
      if (latest === undefined) return;
      try {
        writeFileAtomic(join(this.dir, `last-reserved-v${family}`), latest);
      } catch {
        /* a lost hint */
      }
    });
  }

  private readonly pendingCursors = new Map<4 | 6, string>();
}

function parseOwner(text: string): ReservationOwner | undefined {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (typeof v['containerId'] === 'string' && typeof v['ifName'] === 'string' && typeof v['network'] === 'string') {
      return { containerId: v['containerId'], ifName: v['ifName'], network: v['network'] };
    }
  } catch {
    /* an unreadable owner keeps the address taken; GC frees it */
  }
  return undefined;
}
