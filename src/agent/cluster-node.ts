import { DEFAULT_NODE_GRACE_SECONDS, longDead, silentAgents, type SilentAgent } from '../cluster/liveness.js';
import { claimBlocksReporting, ensureClusterNetwork, leaveCluster, registerNode, removeGoneNode, renewLease, type ClusterDefaults, type NodeInfo } from '../cluster/membership.js';
import { peersFrom, type Peer } from '../cluster/peers.js';
import { Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/store.js';
import { HostGwBackend, type Backend } from '../datapath/host-gw.js';
import { Masquerade } from '../datapath/masquerade.js';
import { findUplink, type Uplink } from '../datapath/uplink.js';
import { VxlanBackend, vtepMac } from '../datapath/vxlan.js';
import { parseCidr, type Cidr } from '../ipam/cidr.js';
import { SYSTEM_NAMESPACE, type ClusterNetworkObject, type IPBlockObject, type LeaseObject, type NodeObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { ClusterStatus } from './api.js';
import type { AttachmentStore } from './attachment-store.js';
import { syncEndpoints } from './endpoints.js';

/**
 * This node as a member of a cluster: joins (network config, Node, lease, blocks), then keeps
 * the kernel converged with the cluster — routes/FDB to every peer through the backend,
 * masquerade, and this node's endpoints in the datastore. Every loop is level-triggered and
 * repairs drift on a timer; none removes anything while the datastore is unreachable.
 *
 * Peers are the nodes whose Node objects exist, whatever their agents do: a silent agent is
 * reported (status().silentAgents), and only one silent for longer than the cluster's node grace
 * makes its node count as gone (its Node and Lease are then removed, by whichever agent sees it
 * first). A running agent keeps its own Node object present, as kubelet does.
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
  private silent: SilentAgent[] = [];
  private nodes!: Informer<NodeObject>;
  private leases!: Informer<LeaseObject>;
  private ipBlocks!: Informer<IPBlockObject>;
  /** Watched only to report: a cluster network that changed (or became unusable) after joining. */
  private networkObj!: Informer<ClusterNetworkObject>;
  private endpointsRunner: Runner | undefined;

  private constructor(
    private readonly cfg: ClusterNodeConfig,
    readonly network: ClusterNetworkObject,
    readonly uplink: Uplink,
    readonly blocks: string[],
    readonly backend: Backend,
    private readonly masquerade: Masquerade,
    private readonly info: NodeInfo,
    /** What joining had to say that stays true (a block taken over from a gone node). */
    private readonly joinNotes: string[],
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
    const claimed = await claimBlocksReporting(store, nodeName, network);
    const blocks = claimed.blocks;
    const joinNotes = claimed.reclaimed.map((r) => `took over pod block ${r.cidr} from node ${r.from}, which is gone (no Node object, lease expired): pods it may still run with addresses of that block would clash`);
    for (const n of joinNotes) log.warn(n);
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
    return new ClusterNode(cfg, network, uplink, blocks, backend, masquerade, info, joinNotes);
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
    this.ipBlocks = new Informer<IPBlockObject>(store, 'IPBlock', log);
    this.networkObj = new Informer<ClusterNetworkObject>(store, 'ClusterNetwork', log);
    for (const i of this.informers) void i.run(signal);

    const routes = new Runner(() => this.syncRoutes(), { name: 'routes', minIntervalMs: 50, resyncMs: 10_000, log });
    for (const i of this.informers) i.onChange(() => routes.trigger());
    // Leases expire without any event: look again as often as a lease could lapse.
    this.timers.push(setInterval(() => routes.trigger(), Math.max(1000, (duration * 1000) / 4)));
    const endpoints = new Runner(() => syncEndpoints(store, nodeName, records.list(), log).then(() => undefined), { name: 'endpoints', minIntervalMs: 100, resyncMs: 30_000, log });
    this.endpointsRunner = endpoints;
    const lease = new Runner(() => this.keepAlive(), { name: 'lease', minIntervalMs: 500, resyncMs: (duration * 1000) / 3, log });
    this.runners.push(routes, endpoints, lease);
    lease.start();
    endpoints.start();
    // Not before the caches are filled: an empty cache means "no peers", and converging to
    // that would delete every route — exactly what a restarting agent must never do.
    void Promise.all(this.informers.map((i) => i.synced)).then(() => {
      if (!signal.aborted) routes.start();
    });
  }

  private get informers(): Array<Informer<NodeObject> | Informer<LeaseObject> | Informer<IPBlockObject> | Informer<ClusterNetworkObject>> {
    return [this.nodes, this.leases, this.ipBlocks, this.networkObj];
  }

  /** Objects these informers left out because they are not usable. */
  rejected(): string[] {
    return this.informers.flatMap((i) => i?.rejected() ?? []);
  }

  /** The lease, and this node's Node object: a running agent's node stays registered (as kubelet's does). */
  private async keepAlive(): Promise<void> {
    const { store, nodeName, log } = this.cfg;
    await renewLease(store, nodeName, this.network.spec.leaseDurationSeconds);
    if (this.nodes?.connectedSince !== undefined && !this.nodes.get(nodeName)) {
      log.warn('this node\'s Node object is gone while its agent runs: registering it again (stop the agent to remove a node)');
      await registerNode(store, this.info, this.blocks);
    }
  }

  /** Tell the endpoints loop that local attachments changed. */
  attachmentsChanged(): void {
    this.endpointsRunner?.trigger();
  }

  private async syncRoutes(): Promise<void> {
    const { store, nodeName, log } = this.cfg;
    // Only on filled caches: an empty one means "no peers" (or no blocks held), and converging
    // to that would delete routes — exactly what a restarting agent must never do.
    if (!this.informers.every((i) => i.hasSynced)) return;
    const connectedSince = this.informers.some((i) => i.connectedSince === undefined) ? undefined : Math.max(...this.informers.map((i) => i.connectedSince as number));
    const holders = new Map(this.ipBlocks.items().map((b) => [b.spec.cidr, b.spec.node]));
    const shape = { podCIDRs: this.network.spec.podCIDRs, blockSize: this.network.spec.blockSize, ownIps: this.uplink.ips };
    const { peers, problems: peerProblems } = peersFrom(this.nodes.items(), nodeName, holders, shape);
    const { problems, changes } = await this.backend.reconcile(peers);
    // Published only once the kernel has them: "peers" in the health answer means "routed".
    this.peers = peers;
    if (await this.masquerade.reconcile()) log.warn('masquerade rules were missing or changed; restored');
    if (changes > 0) log.info('routes converged', { peers: this.peers.map((p) => p.name), changes });
    const now = this.networkObj.get('default');
    const changed = now && JSON.stringify(now.spec) !== JSON.stringify(this.network.spec) ? [`the cluster network changed after this node joined (now ${JSON.stringify(now.spec)}): this agent keeps the settings it joined with until it is restarted`] : [];
    const all = [...this.joinNotes, ...changed, ...peerProblems, ...problems];
    if (JSON.stringify(all) !== JSON.stringify(this.problems)) {
      for (const p of all) if (!this.problems.includes(p)) log.error(p);
    }
    this.problems = all;

    // Liveness is reported; only a silence longer than the node grace removes a node.
    const leases = new Map(this.leases.items().map((l) => [l.metadata.name, l]));
    const view = { now: Date.now(), connectedSince, leaseDurationSeconds: this.network.spec.leaseDurationSeconds };
    const silent = silentAgents(this.nodes.items(), leases, nodeName, view);
    const newlySilent = silent.filter((s) => !this.silent.some((o) => o.node === s.node));
    for (const s of newlySilent) log.warn('a node\'s agent stopped renewing its lease; its routes stay', { node: s.node, lastSeen: s.lastSeen });
    this.silent = silent;
    for (const name of longDead(silent, leases, view, this.nodeGraceSeconds)) {
      const node = this.nodes.get(name);
      if (node && (await removeGoneNode(store, node, leases.get(name)))) {
        log.warn('node removed from the cluster: its agent was silent for longer than the node grace', { node: name, graceSeconds: this.nodeGraceSeconds });
      }
    }
  }

  get nodeGraceSeconds(): number {
    return this.network.spec.nodeGraceSeconds ?? DEFAULT_NODE_GRACE_SECONDS;
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
      datastoreConnected: this.nodes !== undefined && this.informers.every((i) => i.connectedSince !== undefined),
      silentAgents: this.silent,
      nodeGraceSeconds: this.nodeGraceSeconds,
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
