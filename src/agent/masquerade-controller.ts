/**
 * Keeps the masquerade table in force (pods reaching outside the cluster's pod ranges), and
 * restores it when something removed or changed it behind the agent's back.
 */
import { Masquerade } from '../datapath/masquerade.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { Controller } from './controller.js';

export class MasqueradeController implements Controller {
  readonly name = 'masquerade';
  private readonly masquerade: Masquerade;
  private readonly runner: Runner;
  private first = true;

  constructor(clusterCidrs: string[], log: Logger) {
    this.masquerade = new Masquerade(clusterCidrs);
    this.runner = new Runner(
      async () => {
        const changed = await this.masquerade.reconcile();
        if (changed && !this.first) log.warn('masquerade rules were missing or changed; restored');
        this.first = false;
      },
      { name: 'masquerade', minIntervalMs: 1000, resyncMs: 10_000, log },
    );
  }

  /** The first reconcile, before the agent serves: a failure fails the start (pods would leave unmasqueraded). */
  async prepare(): Promise<void> {
    await this.masquerade.reconcile();
    this.first = false;
  }

  start(): void {
    this.runner.start();
  }

  flush(): Promise<void> {
    return this.runner.flush();
  }

  async stop(leaving: boolean): Promise<void> {
    await this.runner.stop();
    if (leaving) await this.masquerade.teardown().catch(() => undefined);
  }
}
