/**
 * Flow recording on this node: the NFLOG reader (kernel/nflog.ts) feeds packets the policy
 * table logs — drops, new connections, the kernel's ICMP refusals of local pods — through
 * flowRecordOf (named ends, the deciding rule of a policy drop) into a bounded ring that the
 * agent's socket serves (`weft flows`, the UI). A reader that exits is started again, with a
 * growing pause, and its restarts are counted.
 */
import { NflogReader, type NflogError } from '../kernel/nflog.js';
import { FLOW_GROUPS } from '../policy/compile.js';
import type { Snapshot } from '../policy/ir.js';
import type { FlowRecord } from '../observe/flow.js';
import { flowRecordOf, parseNflogLine } from '../observe/flow-record.js';
import { FlowRing, type FlowListener } from '../observe/flow-ring.js';
import type { Logger } from '../util/log.js';
import type { FlowsStatus } from './api.js';
import type { Controller } from './controller.js';

export interface FlowsControllerConfig {
  nodeName: string;
  /** Records kept (the ring's size). */
  capacity: number;
  /** dist/weft-nflog. */
  readerPath: string;
  /** The policy snapshot in force: names the ends and finds a drop's rule. */
  snapshot: () => Snapshot | undefined;
  log: Logger;
  /** Called with every record (metrics). */
  onRecord?: (r: FlowRecord) => void;
}


const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

export class FlowsController implements Controller {
  readonly name = 'flows';
  readonly ring: FlowRing;
  private reader: NflogReader | undefined;
  private state: FlowsStatus['reader'] = 'starting';
  private stopped = false;
  private kernelLost = 0;
  private restarts = 0;
  private pauseMs = RESTART_MIN_MS;
  private timer: NodeJS.Timeout | undefined;
  private error: string | undefined;
  /** Records made, by "verdict reason" (metrics read it at a scrape: no work per record). */
  readonly made = new Map<string, number>();

  constructor(private readonly cfg: FlowsControllerConfig) {
    this.ring = new FlowRing(cfg.capacity);
  }

  start(): void {
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const groups = [FLOW_GROUPS.drop, FLOW_GROUPS.forward, FLOW_GROUPS.kernel];
    const reader = new NflogReader(this.cfg.readerPath, groups, {
      line: (line) => this.onLine(line),
      exit: (e) => this.onExit(e),
    });
    this.reader = reader;
    reader.ready.then(
      () => {
        if (this.reader !== reader) return;
        this.state = 'running';
        this.pauseMs = RESTART_MIN_MS;
        this.error = undefined;
      },
      () => undefined, // exit() reports it
    );
  }

  private onLine(line: string): void {
    if (line === 'lost') {
      this.kernelLost++;
      return;
    }
    const p = parseNflogLine(line);
    if (!p) return;
    const r = flowRecordOf(p, this.cfg.nodeName, Date.now(), this.cfg.snapshot());
    if (!r) return;
    this.ring.push(r);
    const key = `${r.verdict} ${r.dropReason ?? ''}`;
    this.made.set(key, (this.made.get(key) ?? 0) + 1);
    this.cfg.onRecord?.(r);
  }

  private onExit(e: NflogError): void {
    this.reader = undefined;
    if (this.stopped) return;
    this.state = 'restarting';
    this.error = e.message;
    this.restarts++;
    this.cfg.log.warn('the flow reader stopped; starting it again', { error: e.message, inMs: this.pauseMs });
    this.timer = setTimeout(() => this.open(), this.pauseMs);
    this.pauseMs = Math.min(this.pauseMs * 2, RESTART_MAX_MS);
  }

  list(sinceMs?: number): FlowRecord[] {
    return this.ring.list(sinceMs);
  }

  subscribe(l: FlowListener): () => void {
    return this.ring.subscribe(l);
  }

  status(): FlowsStatus {
    return {
      reader: this.state,
      records: this.ring.length,
      capacity: this.ring.capacity,
      seen: this.ring.seen,
      overwritten: this.ring.overwritten,
      kernelLost: this.kernelLost,
      readerRestarts: this.restarts,
      ...(this.error ? { error: this.error } : {}),
    };
  }

  /** Resolves once the reader is bound or has failed (tests, the lab; status() says which). */
  async flush(): Promise<void> {
    await this.reader?.ready.catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    await this.reader?.close();
    this.reader = undefined;
  }
}
