import { CniError, ErrorCode } from '../cni/errors.js';
import { Mutex } from '../util/mutex.js';
import { AddressError, formatAddress, parseAddress, type Address, type Cidr, type Family } from './cidr.js';
import { describeSize, Pool } from './pool.js';
import { ReservationStore, type ReservationOwner } from './reservation-store.js';

/**
 * The node's address allocator: one pool per family, reservations on disk, an in-memory index
 * rebuilt from disk at start. All changes go through one mutex, so concurrent ADDs never pick the
 * same address; the reservation is on disk before an address is returned.
 */
export interface Allocation {
  family: Family;
  address: string;
  /** Prefix of the pod address: 32 or 128. */
  prefix: number;
}

export interface PoolStatus {
  family: Family;
  cidr: string;
  size: string;
  used: number;
  free: string;
}

export type { ReservationOwner };

export function ownerKey(o: { containerId: string; ifName: string }): string {
  return `${o.containerId}\u0000${o.ifName}`;
}

export class Ipam {
  private readonly mutex = new Mutex();
  /** address text -> owner (undefined: an unreadable reservation, kept taken). */
  private readonly byAddress = new Map<string, ReservationOwner | undefined>();
  private readonly byOwner = new Map<string, string[]>();
  private readonly cursors = new Map<Family, bigint>();

  private constructor(
    private readonly store: ReservationStore,
    readonly pools: readonly Pool[],
  ) {}

  static async open(stateDir: string, ranges: readonly Cidr[]): Promise<Ipam> {
    const families = new Set<Family>();
    for (const r of ranges) {
      if (families.has(r.family)) {
        throw new AddressError(`only one IPv${r.family} pod range per node is supported, got several`);
      }
      families.add(r.family);
    }
    const store = await ReservationStore.open(stateDir);
    const ipam = new Ipam(
      store,
      ranges.map((r) => new Pool(r)),
    );
    for (const r of await store.loadAll()) ipam.index(r.address, r.owner);
    for (const p of ipam.pools) {
      const c = await store.readCursor(p.family);
      if (c !== undefined) {
        try {
          const a = parseAddress(c);
          if (a.family === p.family) ipam.cursors.set(p.family, a.value);
        } catch {
          /* a bad cursor only loses round-robin position */
        }
      }
    }
    return ipam;
  }

  private index(address: string, owner: ReservationOwner | undefined): void {
    this.byAddress.set(address, owner);
    if (owner) {
      const k = ownerKey(owner);
      const list = this.byOwner.get(k) ?? [];
      if (!list.includes(address)) list.push(address);
      this.byOwner.set(k, list);
    }
  }

  private unindex(address: string): void {
    const owner = this.byAddress.get(address);
    this.byAddress.delete(address);
    if (owner) {
      const k = ownerKey(owner);
      const list = (this.byOwner.get(k) ?? []).filter((a) => a !== address);
      if (list.length) this.byOwner.set(k, list);
      else this.byOwner.delete(k);
    }
  }

  addressesOf(owner: { containerId: string; ifName: string }): string[] {
    return [...(this.byOwner.get(ownerKey(owner)) ?? [])];
  }

  private takenInPool(p: Pool): number {
    let n = 0;
    for (const a of this.byAddress.keys()) {
      const addr = parseAddress(a);
      if (addr.family === p.family && addr.value >= p.first && addr.value <= p.last) n++;
    }
    return n;
  }

  /**
   * One address per pool for `owner`. Idempotent: an owner that already holds addresses gets the
   * same ones back. `requested` (at most one per family) must be free and assignable.
   */
  allocate(owner: ReservationOwner, requested: readonly string[]): Promise<Allocation[]> {
    return this.mutex.run(async () => {
      if (this.pools.length === 0) {
        throw new CniError(ErrorCode.AddressesExhausted, 'this node has no pod address range configured');
      }
      const wanted = this.parseRequested(requested);
      const held = this.addressesOf(owner);
      if (held.length > 0) return this.reuse(owner, held, wanted);

      const made: string[] = [];
      try {
        for (const pool of this.pools) {
          const want = wanted.get(pool.family);
          const value = want !== undefined ? this.claimRequested(pool, want) : this.pick(pool);
          const text = formatAddress(pool.family, value);
          if (!this.store.reserve(text, owner)) {
            throw new CniError(ErrorCode.Internal, `address ${text} was reserved on disk by another writer`);
          }
          this.index(text, owner);
          made.push(text);
          this.cursors.set(pool.family, value);
          this.store.writeCursorLater(pool.family, text);
        }
      } catch (err) {
        for (const a of made) {
          this.store.release(a);
          this.unindex(a);
        }
        throw err;
      }
      return made.map((a) => this.toAllocation(a));
    });
  }

  private toAllocation(address: string): Allocation {
    const a = parseAddress(address);
    return { family: a.family, address, prefix: a.family === 4 ? 32 : 128 };
  }

  private reuse(owner: ReservationOwner, held: string[], wanted: Map<Family, bigint>): Allocation[] {
    for (const [family, value] of wanted) {
      const mine = held.map(parseAddress).find((a) => a.family === family);
      if (mine && mine.value !== value) {
        throw new CniError(
          ErrorCode.AddressUnavailable,
          `container ${owner.containerId} interface ${owner.ifName} already holds ${formatAddress(family, mine.value)}, not the requested ${formatAddress(family, value)}`,
          'DEL the attachment first to change its address',
        );
      }
    }
    return held.map((a) => this.toAllocation(a));
  }

  private parseRequested(requested: readonly string[]): Map<Family, bigint> {
    const out = new Map<Family, bigint>();
    for (const r of requested) {
      const text = r.includes('/') ? r.slice(0, r.indexOf('/')) : r;
      let a: Address;
      try {
        a = parseAddress(text);
      } catch (err) {
        throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP ${JSON.stringify(r)} is not an IP address`, (err as Error).message);
      }
      if (out.has(a.family) && out.get(a.family) !== a.value) {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `more than one IPv${a.family} address requested (${requested.join(', ')})`,
          'a pod gets one address per family',
        );
      }
      out.set(a.family, a.value);
    }
    return out;
  }

  private claimRequested(pool: Pool, value: bigint): bigint {
    const addr: Address = { family: pool.family, value };
    const text = formatAddress(pool.family, value);
    const why = pool.refusal(addr);
    if (why) throw new CniError(ErrorCode.AddressUnavailable, `requested IP ${text} cannot be assigned: ${why}`);
    if (this.byAddress.has(text)) {
      const o = this.byAddress.get(text);
      throw new CniError(
        ErrorCode.AddressUnavailable,
        `requested IP ${text} is already in use${o ? ` by container ${o.containerId} interface ${o.ifName}` : ''}`,
      );
    }
    return value;
  }

  private pick(pool: Pool): bigint {
    const taken = this.takenInPool(pool);
    const v = pool.next(this.cursors.get(pool.family), (x) => this.byAddress.has(formatAddress(pool.family, x)), taken);
    if (v === undefined) {
      throw new CniError(
        ErrorCode.AddressesExhausted,
        `no free IPv${pool.family} address in pod range ${pool.cidr.text}: all ${describeSize(pool)} are in use`,
        'delete unused pods, or give the node a larger range',
      );
    }
    return v;
  }

  /** Frees every address of `owner`; returns what was freed (none is fine: DEL is idempotent). */
  release(owner: { containerId: string; ifName: string }): Promise<string[]> {
    return this.mutex.run(async () => {
      const held = this.addressesOf(owner);
      for (const a of held) {
        this.store.release(a);
        this.unindex(a);
      }
      return held;
    });
  }

  /** Frees every reservation whose owner `keep` rejects (unreadable owners included). */
  collect(keep: (owner: ReservationOwner) => boolean): Promise<string[]> {
    return this.mutex.run(async () => {
      const freed: string[] = [];
      for (const [address, owner] of [...this.byAddress]) {
        if (owner && keep(owner)) continue;
        this.store.release(address);
        this.unindex(address);
        freed.push(address);
      }
      return freed;
    });
  }

  reservations(): Array<{ address: string; owner: ReservationOwner | undefined }> {
    return [...this.byAddress].map(([address, owner]) => ({ address, owner }));
  }

  status(): PoolStatus[] {
    return this.pools.map((p) => {
      const used = this.takenInPool(p);
      return {
        family: p.family,
        cidr: p.cidr.text,
        size: p.size.toString(),
        used,
        free: (p.size - BigInt(used)).toString(),
      };
    });
  }
}
