/**
 * Publishes this node's pods' addresses, before anything else reports them, from the attachment
 * records: as WeftEndpoints and, on Kubernetes, as the weft.io/pod-ips annotation of each Pod (as
 * Calico does). Runs on every change the CNI service announces — just after each ADD, never
 * delaying it — and on a resync that repairs what was lost.
 */
import type { Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/store.js';
import type { WeftEndpointObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { AttachmentStore } from './attachment-store.js';
import type { Controller } from './controller.js';
import { syncEndpoints, syncPodIPs, type PodIPs } from './endpoints.js';

export class EndpointsController implements Controller {
  readonly name = 'endpoints';
  private readonly runner: Runner;

  /** Pod annotations this agent wrote, by "namespace/name". */
  private readonly annotated = new Map<string, PodIPs>();

  constructor(store: Store, nodeName: string, records: AttachmentStore, private readonly endpoints: Informer<WeftEndpointObject>, log: Logger, opts: { annotatePods: boolean }) {
    const run = async (): Promise<void> => {
      const list = records.list();
      // What is there, from the shared informer (a list per run would cost the API server
      // every node's pods every 30 s); until it has listed once, nothing is known, and this
      // half waits for the run its first list triggers (the informer reports why it has not).
      const recorded = endpoints.hasSynced ? syncEndpoints(store, nodeName, list, endpoints.items(), log) : Promise.resolve(0);
      // Both run, whichever fails: one failure is no reason to delay the other record.
      const results = await Promise.allSettled([recorded, opts.annotatePods ? syncPodIPs(store, list, this.annotated) : Promise.resolve(0)]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    };
    this.runner = new Runner(run, { name: 'endpoints', minIntervalMs: 100, resyncMs: 30_000, log });
  }

  start(): void {
    this.runner.start();
    // The first run may come before the informer's first list: run again once it is in.
    void this.endpoints.synced.then(() => this.runner.trigger());
  }

  /** Local attachments changed. */
  attachmentsChanged(): void {
    this.runner.trigger();
  }

  flush(): Promise<void> {
    return this.runner.flush();
  }

  async stop(): Promise<void> {
    await this.runner.stop();
  }
}
