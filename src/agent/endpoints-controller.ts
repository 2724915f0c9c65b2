/**
 * Publishes this node's pods as WeftEndpoints (their addresses, before anything else reports
 * them), from the attachment records: on every change the CNI service announces, and on a
 * resync that repairs what was lost.
 */
import type { Store } from '../datastore/store.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { AttachmentStore } from './attachment-store.js';
import type { Controller } from './controller.js';
import { syncEndpoints } from './endpoints.js';

export class EndpointsController implements Controller {
  readonly name = 'endpoints';
  private readonly runner: Runner;

  constructor(store: Store, nodeName: string, records: AttachmentStore, log: Logger) {
    this.runner = new Runner(() => syncEndpoints(store, nodeName, records.list(), log).then(() => undefined), { name: 'endpoints', minIntervalMs: 100, resyncMs: 30_000, log });
  }

  start(): void {
    this.runner.start();
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
