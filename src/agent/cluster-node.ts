import { claimBlocks, ensureClusterNetwork, leaveCluster, registerNode, renewLease, type ClusterDefaults } from '../cluster/membership.js';
import { peersFrom, type Peer } from '../cluster/peers.js';
import { Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/store.js';
import { HostGwBackend, type Backend } from '../datapath/host-gw.js';
import { Masquerade } from '../datapath/masquerade.js';
import { findUplink, type Uplink } from '../datapath/uplink.js';
import { VxlanBackend, vtepMac } from '../datapath/vxlan.js';
import { parseCidr, type Cidr } from '../ipam/cidr.js';
import { SYSTEM_NAMESPACE, type ClusterNetworkObject, type LeaseObject, type NodeObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { ClusterStatus } from './api.js';
import type { AttachmentStore } from './attachment-store.js';
import { syncEndpoints } from './endpoints.js';

/**
 * This node as a member of a cluster: joins (network config, Node, lease, blocks), then keeps
 * the kernel converged with the cluster — routes/FDB to every live peer through the backend,
 * masquerade, and this node's endpoints in the datastore. Every loop is level-triggered and
 * repairs drift on a timer; none removes anything while the datastore is unreachable.
 */
export interface ClusterNodeConfig {
  store: Store;
  nodeName: string;
  nodeIps: string[];
  defaults: ClusterDefaults | undefined;
  log: Logger;
}

export class ClusterNode {
  private readonly abort = new AbortController();
  private readonly runners: Runner[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private peers: Peer[] = [];
  private problems: string[] = [];
  private nodes!: Informer<NodeObject>;
  private leases!: Informer<LeaseObject>;
  private endpointsRunner: Runner | undefined;

  private constructor(
    private readonly cfg: ClusterNodeConfig,
    readonly network: ClusterNetworkObject,
    readonly uplink: Uplink,
    readonly blocks: string[],
    readonly backend: Backend,
    private readonly masquerade: Masquerade,
  ) {}

  static async join(cfg: ClusterNodeConfig): Promise<ClusterNode> {
    const { store, nodeName, log } = cfg;
    const network = await ensureClusterNetwork(store, cfg.defaults);
    const uplink = await findUplink(cfg.nodeIps);
    const type = network.spec.backend.type;
    const mac = type === 'vxlan' ? vtepMac(nodeName) : undefined;
    const info = { name: nodeName, ips: uplink.ips, backend: type, ...(mac ? { vxlanMac: mac } : {}) };
    // The lease first: a block whose holder has no lease looks free to other nodes.
    await renewLease(store, nodeName, network.spec.leaseDurationSeconds);
    await registerNode(store, info);
    const blocks = await claimBlocks(store, nodeName, network);
    await registerNode(store, info, blocks);
    let backend: Backend;
    if (type === 'vxlan') {
      const v4 = uplink.ips.find((a) => !a.includes(':'));
      if (!v4) throw new Error('the vxlan backend needs an IPv4 underlay address on this node (--node-ip)');
      backend = new VxlanBackend({
        vni: network.spec.backend.vni ?? 1,
        port: network.spec.backend.port ?? 8472,
        localIp: v4,
        uplinkDev: uplink.dev,
        uplinkMtu: uplink.mtu,
        mac: mac as string,
        blocks,
      });
    } else {
      backend = new HostGwBackend(uplink.mtu);
    }
    await backend.setup();
    const masquerade = new Masquerade(network.spec.podCIDRs);
    await masquerade.reconcile();
    log.info('joined the cluster', { node: nodeName, backend: type, blocks, uplink: uplink.dev, underlay: uplink.ips, podMtu: backend.podMtu });
    return new ClusterNode(cfg, network, uplink, blocks, backend, masquerade);
  }

  get podCidrs(): Cidr[] {
    return this.blocks.map(parseCidr);
  }

  /** Starts the loops. `records` are this node's attachments (for the endpoints). */
  start(records: AttachmentStore): void {
    const { store, nodeName, log } = this.cfg;
    const signal = this.abort.signal;
    const duration = this.network.spec.leaseDurationSeconds;
    this.nodes = new Informer<NodeObject>(store, 'Node', log);
    this.leases = new Informer<LeaseObject>(store, 'Lease', log, SYSTEM_NAMESPACE);
    void this.nodes.run(signal);
    void this.leases.run(signal);

    const routes = new Runner(() => this.syncRoutes(), { name: 'routes', minIntervalMs: 50, resyncMs: 10_000, log });
    this.nodes.onChange(() => routes.trigger());
    this.leases.onChange(() => routes.trigger());
    // Leases expire without any event: look again as often as a lease could lapse.
    this.timers.push(setInterval(() => routes.trigger(), Math.max(1000, (duration * 1000) / 4)));
    const endpoints = new Runner(() => syncEndpoints(store, nodeName, records.list()).then(() => undefined), { name: 'endpoints', minIntervalMs: 100, resyncMs: 30_000, log });
    this.endpointsRunner = endpoints;
    const lease = new Runner(() => renewLease(store, nodeName, duration).then(() => undefined), { name: 'lease', minIntervalMs: 500, resyncMs: (duration * 1000) / 3, log });
    this.runners.push(routes, endpoints, lease);
    lease.start();
    endpoints.start();
    // Not before both caches are filled: an empty cache means "no peers", and converging to
    // that would delete every route — exactly what a restarting agent must never do.
    void Promise.all([this.nodes.synced, this.leases.synced]).then(() => {
      if (!signal.aborted) routes.start();
    });
  }

  /** Tell the endpoints loop that local attachments changed. */
  attachmentsChanged(): void {
    this.endpointsRunner?.trigger();
  }

  private async syncRoutes(): Promise<void> {
    const connectedSince = this.nodes.connectedSince === undefined || this.leases.connectedSince === undefined ? undefined : Math.max(this.nodes.connectedSince, this.leases.connectedSince);
    const leases = new Map(this.leases.items().map((l) => [l.metadata.name, l]));
    const peers = peersFrom(this.nodes.items(), leases, this.cfg.nodeName, {
      now: Date.now(),
      connectedSince,
      leaseDurationSeconds: this.network.spec.leaseDurationSeconds,
    });
    const { problems, changes } = await this.backend.reconcile(peers);
    // Published only once the kernel has them: "peers" in the health answer means "routed".
    this.peers = peers;
    if (await this.masquerade.reconcile()) this.cfg.log.warn('masquerade rules were missing or changed; restored');
    if (changes > 0) this.cfg.log.info('routes converged', { peers: this.peers.map((p) => p.name), changes });
    if (JSON.stringify(problems) !== JSON.stringify(this.problems)) {
      for (const p of problems) this.cfg.log.error(p);
    }
    this.problems = problems;
  }

  /** Waits until the routes loop has run after now (tests, lab). */
  async flush(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.flush()));
  }

  status(): ClusterStatus {
    return {
      node: this.cfg.nodeName,
      backend: this.backend.type,
      blocks: this.blocks,
      peers: this.peers.map((p) => p.name),
      problems: this.problems,
      datastoreConnected: this.nodes?.connectedSince !== undefined && this.leases?.connectedSince !== undefined,
    };
  }

  /** Stops the loops; with `leave`, deregisters so every peer drops this node at once. */
  async stop(leave: boolean): Promise<void> {
    this.abort.abort();
    for (const r of this.runners) r.stop();
    for (const t of this.timers) clearInterval(t);
    if (leave) {
      await leaveCluster(this.cfg.store, this.cfg.nodeName).catch((err: Error) => this.cfg.log.warn('could not deregister', { error: err.message }));
      await this.backend.teardown().catch(() => undefined);
      await this.masquerade.teardown().catch(() => undefined);
    }
    await this.cfg.store.close();
  }
}
