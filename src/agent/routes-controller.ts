/**
 * Keeps the kernel routing to every peer through the backend: peers come from the Node and
 * IPBlock caches (checked by cluster/peers.ts), and are published in health only once the
 * backend has installed them. Nothing runs before every cache has listed once: an empty cache
 * means "no peers", and converging to that would delete every route — exactly what a
 * restarting agent must never do.
 */
import { peersFrom, type Peer } from '../cluster/peers.js';
import type { Informer } from '../datastore/informer.js';
import type { ClusterNetworkObject, IPBlockObject, NodeObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { Controller } from './controller.js';
import type { JoinedNode } from './join.js';

export class RoutesController implements Controller {
  readonly name = 'routes';
  private readonly runner: Runner;
  private readonly unsubscribe: Array<() => void> = [];
  private peers: Peer[] = [];
  private problems: string[] = [];

  constructor(
    private readonly node: JoinedNode,
    private readonly nodes: Informer<NodeObject>,
    private readonly ipBlocks: Informer<IPBlockObject>,
    /** Watched only to report: a cluster network that changed (or became unusable) after joining. */
    private readonly networkObj: Informer<ClusterNetworkObject>,
    private readonly log: Logger,
  ) {
    this.runner = new Runner(() => this.sync(), { name: 'routes', minIntervalMs: 50, resyncMs: 10_000, log });
  }

  private get informers(): Array<Informer<NodeObject> | Informer<IPBlockObject> | Informer<ClusterNetworkObject>> {
    return [this.nodes, this.ipBlocks, this.networkObj];
  }

  start(): void {
    for (const i of this.informers) this.unsubscribe.push(i.onChange(() => this.runner.trigger()));
    this.runner.start();
  }

  private async sync(): Promise<void> {
    if (!this.informers.every((i) => i.hasSynced)) return;
    const { network, nodeName, uplink, backend } = this.node;
    // Leased blocks are checked against their IPBlocks; Kubernetes' allocations (ipam
    // kubernetes) have none, and are checked against the cluster's shape alone.
    const holders = network.spec.ipam === 'kubernetes' ? undefined : new Map(this.ipBlocks.items().map((b) => [b.spec.cidr, b.spec.node]));
    const shape = { podCIDRs: network.spec.podCIDRs, blockSize: network.spec.blockSize, ownIps: uplink.ips };
    const { peers, problems: peerProblems } = peersFrom(this.nodes.items(), nodeName, holders, shape);
    const { problems, changes, routed } = await backend.reconcile(peers);
    // Published only once the kernel has them: "peers" in the health answer means "routed".
    this.peers = routed ? peers.filter((p) => routed.includes(p.name)) : peers;
    if (changes > 0) this.log.info('routes converged', { peers: peers.map((p) => p.name), changes });
    const now = this.networkObj.get('default');
    const changed = now && JSON.stringify(now.spec) !== JSON.stringify(network.spec) ? [`the cluster network changed after this node joined (now ${JSON.stringify(now.spec)}): this agent keeps the settings it joined with until it is restarted`] : [];
    const all = [...this.node.notes, ...changed, ...peerProblems, ...problems];
    for (const p of all) if (!this.problems.includes(p)) this.log.error(p);
    this.problems = all;
  }

  status(): { peers: string[]; problems: string[] } {
    return { peers: this.peers.map((p) => p.name), problems: this.problems };
  }

  /** The peers routed, whole (`weft doctor` derives the kernel state they need). */
  routedPeers(): Peer[] {
    return [...this.peers];
  }

  flush(): Promise<void> {
    return this.runner.flush();
  }

  async stop(leaving: boolean): Promise<void> {
    await this.runner.stop();
    for (const u of this.unsubscribe) u();
    if (leaving) await this.node.backend.teardown().catch(() => undefined);
  }
}
