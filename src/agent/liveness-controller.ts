/**
 * Watches the other nodes' leases. A silent agent is reported (its routes stay: a crashed or
 * upgrading agent must not cut its node off); only one silent for longer than the cluster's
 * node grace makes its node count as gone, and then whichever agent sees it first removes its
 * Node and Lease (cluster/liveness.ts decides, cluster/membership.ts removes).
 */
import { DEFAULT_NODE_GRACE_SECONDS, longDead, silentAgents, type SilentAgent } from '../cluster/liveness.js';
import { removeGoneNode } from '../cluster/membership.js';
import type { Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/store.js';
import type { ClusterNetworkObject, LeaseObject, NodeObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { Controller } from './controller.js';

export class LivenessController implements Controller {
  readonly name = 'liveness';
  private readonly runner: Runner;
  private readonly unsubscribe: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private silent: SilentAgent[] = [];

  constructor(
    private readonly store: Store,
    private readonly nodeName: string,
    private readonly network: ClusterNetworkObject,
    private readonly nodes: Informer<NodeObject>,
    private readonly leases: Informer<LeaseObject>,
    private readonly log: Logger,
  ) {
    this.runner = new Runner(() => this.sync(), { name: 'liveness', minIntervalMs: 50, resyncMs: 10_000, log });
  }

  get nodeGraceSeconds(): number {
    return this.network.spec.nodeGraceSeconds ?? DEFAULT_NODE_GRACE_SECONDS;
  }

  start(): void {
    for (const i of [this.nodes, this.leases]) this.unsubscribe.push(i.onChange(() => this.runner.trigger()));
    // Leases expire without any event: look again as often as a lease could lapse.
    this.timer = setInterval(() => this.runner.trigger(), Math.max(1000, (this.network.spec.leaseDurationSeconds * 1000) / 4));
    this.runner.start();
  }

  private async sync(): Promise<void> {
    if (!this.nodes.hasSynced || !this.leases.hasSynced) return;
    // Judged only on caches fed by the datastore, and only for as long as they have been.
    const connectedSince = this.nodes.connectedSince === undefined || this.leases.connectedSince === undefined ? undefined : Math.max(this.nodes.connectedSince, this.leases.connectedSince);
    const leases = new Map(this.leases.items().map((l) => [l.metadata.name, l]));
    const view = { now: Date.now(), connectedSince, leaseDurationSeconds: this.network.spec.leaseDurationSeconds };
    const silent = silentAgents(this.nodes.items(), leases, this.nodeName, view);
    for (const s of silent.filter((s) => !this.silent.some((o) => o.node === s.node))) {
      this.log.warn("a node's agent stopped renewing its lease; its routes stay", { node: s.node, lastSeen: s.lastSeen });
    }
    this.silent = silent;
    for (const name of longDead(silent, leases, view, this.nodeGraceSeconds)) {
      const node = this.nodes.get(name);
      if (node && (await removeGoneNode(this.store, node, leases.get(name)))) {
        this.log.warn('node removed from the cluster: its agent was silent for longer than the node grace', { node: name, graceSeconds: this.nodeGraceSeconds });
      }
    }
  }

  status(): { silentAgents: SilentAgent[]; nodeGraceSeconds: number } {
    return { silentAgents: this.silent, nodeGraceSeconds: this.nodeGraceSeconds };
  }

  flush(): Promise<void> {
    return this.runner.flush();
  }

  async stop(): Promise<void> {
    await this.runner.stop();
    if (this.timer) clearInterval(this.timer);
    for (const u of this.unsubscribe) u();
  }
}
