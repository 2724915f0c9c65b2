/**
 * A node's recent flow records: a fixed-size ring (memory never grows with traffic; the oldest
 * record makes room, and how many did is counted, not hidden), and the live readers that
 * `weft flows --follow` and the UI hold open. Pure: no I/O, no clock.
 */
import type { FlowRecord } from './flow.js';

export type FlowListener = (r: FlowRecord) => void;

export class FlowRing {
  private readonly items: Array<FlowRecord | undefined>;
  private next = 0;
  private size = 0;
  /** Records ever added. */
  seen = 0;
  /** Records overwritten before anyone read them all: seen − what the ring holds. */
  overwritten = 0;
  private readonly listeners = new Set<FlowListener>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`flow ring capacity ${capacity}: expected a positive integer`);
    this.items = new Array<FlowRecord | undefined>(capacity);
  }

  push(r: FlowRecord): void {
    if (this.size === this.capacity) this.overwritten++;
    else this.size++;
    this.items[this.next] = r;
    this.next = (this.next + 1) % this.capacity;
    this.seen++;
    for (const l of this.listeners) l(r);
  }

  /** What the ring holds, oldest first; with `sinceMs`, only records at or after it. */
  list(sinceMs?: number): FlowRecord[] {
    const out: FlowRecord[] = [];
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let i = 0; i < this.size; i++) {
      const r = this.items[(start + i) % this.capacity] as FlowRecord;
      if (sinceMs === undefined || Date.parse(r.time) >= sinceMs) out.push(r);
    }
    return out;
  }

  get length(): number {
    return this.size;
  }

  /** Calls `l` with every record added from now on, until the returned function is called. */
  subscribe(l: FlowListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get readers(): number {
    return this.listeners.size;
  }
}
