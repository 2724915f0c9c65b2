/**
 * Keeps this node a member: renews its lease, and registers its Node object again should it
 * vanish while the agent runs (as kubelet does) — or, on Kubernetes, where the Node is the
 * kubelet's, puts Weft's annotations back should they go. On any store, annotations that are
 * not what this node publishes (a WireGuard key whose publishing failed after a rotation) are
 * written again. Leaving, it deregisters the node (its
 * blocks, lease, endpoints, and its Node or Weft's annotations on it go at once) so every peer
 * drops it without waiting.
 */
import { leaveCluster, nodeNeedsAnnotations, registerNode, renewLease, weftOwnsNodes } from '../cluster/membership.js';
import type { Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/store.js';
import type { NodeObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { Controller } from './controller.js';
import type { JoinedNode } from './join.js';

export class MembershipController implements Controller {
  readonly name = 'membership';
  private readonly runner: Runner;
  /** The Node was deleted (on Kubernetes, where it is not Weft's to register): said once. */
  private nodeGone = false;

  constructor(
    private readonly store: Store,
    private readonly node: JoinedNode,
    private readonly nodes: Informer<NodeObject>,
    private readonly log: Logger,
  ) {
    const duration = node.network.spec.leaseDurationSeconds;
    this.runner = new Runner(() => this.keepAlive(), { name: 'lease', minIntervalMs: 500, resyncMs: (duration * 1000) / 3, log });
  }

  start(): void {
    this.runner.start();
  }

  private async keepAlive(): Promise<void> {
    const { nodeName, network, blocks } = this.node;
    await renewLease(this.store, nodeName, network.spec.leaseDurationSeconds);
    if (this.nodes.connectedSince === undefined) return;
    // Read after the awaits: a key rotation may have changed what this node publishes meanwhile.
    const { info } = this.node;
    const mine = this.nodes.get(nodeName);
    if (weftOwnsNodes(this.store)) {
      if (!mine) {
        this.log.warn("this node's Node object is gone while its agent runs: registering it again (stop the agent to remove a node)");
        await registerNode(this.store, info, blocks);
      } else if (nodeNeedsAnnotations(mine, info, blocks, false)) {
        this.log.warn("this node's Node object does not say what the node publishes (its addresses, its backend's or WireGuard's data): writing it again");
        await registerNode(this.store, info, blocks);
      }
    } else if (!mine) {
      if (!this.nodeGone) this.log.warn("this node's Node object was deleted: peers no longer route to it until the kubelet registers it again");
      this.nodeGone = true;
    } else if (nodeNeedsAnnotations(mine, info, blocks)) {
      if (!this.nodeGone) this.log.warn("Weft's annotations on this node's Node object were removed or changed: writing them again");
      this.nodeGone = false;
      await registerNode(this.store, info, blocks);
    }
  }

  flush(): Promise<void> {
    return this.runner.flush();
  }

  async stop(leaving: boolean): Promise<void> {
    await this.runner.stop();
    if (leaving) await leaveCluster(this.store, this.node.nodeName).catch((err: Error) => this.log.warn('could not deregister', { error: err.message }));
  }
}
