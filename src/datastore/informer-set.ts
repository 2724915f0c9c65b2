/**
 * One informer per kind (and namespace) for a whole agent: controllers that read the same kind
 * share one list and one watch, as Kubernetes' shared informer factory does. Controllers take
 * their informers before `start`; the composition root starts and stops the set.
 */
import type { KObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Informer } from './informer.js';
import type { Store } from './store.js';

export class InformerSet {
  private readonly informers = new Map<string, Informer<KObject>>();
  private readonly abort = new AbortController();
  private started = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** The informer of `kind` (in `namespace`, when given), made on first use. */
  of<T extends KObject>(kind: string, namespace?: string): Informer<T> {
    const key = `${kind}/${namespace ?? ''}`;
    let i = this.informers.get(key);
    if (!i) {
      if (this.started) throw new Error(`informer for ${kind} asked for after the informers started`);
      i = new Informer<KObject>(this.store, kind, this.log, namespace);
      this.informers.set(key, i);
    }
    return i as unknown as Informer<T>;
  }

  start(): void {
    this.started = true;
    for (const i of this.informers.values()) void i.run(this.abort.signal);
  }

  /** True while every informer is fed by the datastore. */
  connected(): boolean {
    return this.started && [...this.informers.values()].every((i) => i.connectedSince !== undefined);
  }

  /** Stored objects left out because they are not usable, one line each, over every kind. */
  /** Every informer's watch restarts, added up. */
  watchRestarts(): number {
    return [...this.informers.values()].reduce((n, i) => n + i.watchRestarts, 0);
  }

  rejected(): string[] {
    return [...new Set([...this.informers.values()].flatMap((i) => i.rejected()))].sort();
  }

  stop(): void {
    this.abort.abort();
    for (const i of this.informers.values()) i.stop();
  }
}
