/**
 * The node agent's composition root: the one place that opens the datastore and closes it,
 * makes the node's controllers, starts them in order and stops them in reverse. Single-node
 * mode has no store and no controllers: state, IPAM, the CNI service and its socket.
 */
import { promises as fs } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { FORWARDING_SYSCTL, kernelDatapath, type Datapath } from '../datapath/datapath.js';
import { ipProcessRunner, type BatchRunner } from '../kernel/batch-runner.js';
import { findNetlinkHelper, NetlinkHelper } from '../kernel/netlink-helper.js';
import { findNftHelper, NftHelper } from '../kernel/nft-helper.js';
import { nftProcessRunner, type NftRunner } from '../kernel/nft.js';
import { bootId, ensureSysctl, readSysctl } from '../kernel/sysctl.js';
import { InformerSet } from '../datastore/informer-set.js';
import { openStore, type DatastoreOptions } from '../datastore/open-store.js';
import type { Store } from '../datastore/store.js';
import { parseCidr, type Cidr } from '../ipam/cidr.js';
import { SYSTEM_NAMESPACE, type ClusterNetworkObject, type IPBlockObject, type LeaseObject, type NodeObject, type WeftEndpointObject } from '../model/objects.js';
import { Ipam } from '../ipam/ipam.js';
import { pidFileHolder, processStartTime } from '../util/lock-file.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { SYSCTLS_BEFORE_FILE } from '../install/install.js';
import type { Logger } from '../util/log.js';
import type { ClusterStatus, HealthReply, RotateKeyReply } from './api.js';
import { WireGuardBackend } from '../datapath/wireguard.js';
import { registerNode } from '../cluster/membership.js';
import { AttachmentStore } from './attachment-store.js';
import type { Controller } from './controller.js';
import { EndpointsController } from './endpoints-controller.js';
import { joinCluster, type JoinConfig, type JoinedNode } from './join.js';
import { LivenessController } from './liveness-controller.js';
import { MasqueradeController } from './masquerade-controller.js';
import { MembershipController } from './membership-controller.js';
import { RoutesController } from './routes-controller.js';
import { CniService, type CniServiceDeps } from './cni-service.js';
import { APPLIED_TABLE_FILE, PolicyController } from './policy-controller.js';
import { startAgentServer } from './server.js';
import { FlowsController } from './flows-controller.js';
import { AgentMetrics } from './metrics.js';
import { startMetricsServer } from './metrics-server.js';
import { WEFT_VERSION } from '../util/version.js';
import { findNflogReader } from '../kernel/nflog.js';
import { doctorView } from './doctor-view.js';

const metricsUrl = (a: { host: string; port: number }): string => `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics`;

/** On Kubernetes, how long an ADD waits for its Pod to be visible (then fails: try again later). */
const POD_WAIT_MS = 5_000;

export interface AgentClusterConfig extends Omit<JoinConfig, 'log' | 'stateDir'> {
  /** The datastore to open: the agent owns it, from start to stop. */
  datastore: DatastoreOptions;
  leaveOnExit: boolean;
  networkPolicy?: boolean;
}

export interface AgentConfig {
  stateDir: string;
  socketPath: string;
  /** Single-node mode: the node's pod ranges. Exclusive with `cluster`. */
  podCidrs?: Cidr[];
  /** Cluster mode: pod ranges are blocks leased from the cluster datastore. */
  cluster?: AgentClusterConfig;
  /** Pod MTU; in cluster mode the backend's (uplink minus overhead) when absent. */
  mtu?: number;
  log: Logger;
  datapath?: Datapath;
  /**
   * The rtnetlink helper for pod links: its path (default: dist/weft-netlink when built), or
   * false for `ip` processes.
   */
  netlinkHelper?: string | false;
  /**
   * The nftables helper for the policy table: its path (default: dist/weft-nft when built), or
   * false for an `nft` process per sync.
   */
  nftHelper?: string | false;
  pauseAt?: CniServiceDeps['pauseAt'];
  /**
   * Flow recording (with policy): how many records the node keeps, or false for none. Default
   * on with 4096 records when the reader (dist/weft-nflog) is built.
   */
  flows?: { capacity: number } | false;
  /** Where Prometheus scrapes the agent (--metrics-address); absent: no metrics listener. */
  metricsAddress?: { host: string; port: number };
}

export interface RunningAgent {
  service: CniService;
  ipam: Ipam;
  records: AttachmentStore;
  /** The cluster's controllers, in start order (empty on a single node). */
  controllers: Controller[];
  policy: PolicyController | undefined;
  stop(): Promise<void>;
}

/** A node of a cluster: its store, what joining gave it, and its controllers. */
interface ClusterParts {
  store: Store;
  informers: InformerSet;
  joined: JoinedNode;
  routes: RoutesController;
  liveness: LivenessController;
  masquerade: MasqueradeController;
  endpoints: EndpointsController;
  membership: MembershipController;
}

/** Every controller of a joined node but policy's. */
function clusterControllers(store: Store, joined: JoinedNode, records: AttachmentStore, log: Logger): ClusterParts {
  const informers = new InformerSet(store, log);
  const nodes = informers.of<NodeObject>('Node');
  const child = (controller: string): Logger => log.child({ controller });
  return {
    store,
    informers,
    joined,
    membership: new MembershipController(store, joined, nodes, child('membership')),
    routes: new RoutesController(joined, nodes, informers.of<IPBlockObject>('IPBlock'), informers.of<ClusterNetworkObject>('ClusterNetwork'), child('routes')),
    liveness: new LivenessController(store, joined.nodeName, joined.network, nodes, informers.of<LeaseObject>('Lease', SYSTEM_NAMESPACE), child('liveness')),
    masquerade: new MasqueradeController(joined.network.spec.podCIDRs, child('masquerade')),
    endpoints: new EndpointsController(store, joined.nodeName, records, informers.of<WeftEndpointObject>('WeftEndpoint'), child('endpoints'), { annotatePods: store.backend === 'kubernetes' }),
  };
}

function clusterStatus(c: ClusterParts): ClusterStatus {
  return {
    node: c.joined.nodeName,
    backend: c.joined.backend.type,
    blocks: c.joined.blocks,
    ...c.routes.status(),
    datastoreConnected: c.informers.connected(),
    ...c.liveness.status(),
    ...(c.joined.backend instanceof WireGuardBackend ? { encryption: { type: 'wireguard' as const, ...c.joined.backend.status() } } : {}),
  };
}

/**
 * A new WireGuard key pair for this node: in force on its device, then published on its Node
 * object, which peers follow (datapath/wireguard.ts says why in this order). Refused while a
 * peer's agent is silent, unless forced: that peer would not learn the new key, and the two
 * nodes' pods would not reach each other until its agent is back.
 */
async function rotateNodeKey(c: ClusterParts, log: Logger, force: boolean): Promise<RotateKeyReply> {
  const wg = c.joined.backend;
  if (!(wg instanceof WireGuardBackend)) return { ok: false, error: 'this node does not encrypt: the cluster was created without --encryption wireguard' };
  const silent = c.liveness.status().silentAgents;
  if (silent.length > 0 && !force) {
    const who = silent.map((s) => `${s.node}${s.silentSeconds !== undefined ? ` (silent ${s.silentSeconds} s)` : ''}`).join(', ');
    return { ok: false, error: `refused: the agent of ${who} is not running, so it would not learn the new key, and its pods and this node's could not reach each other until it is back; rotate once every agent runs, or force it` };
  }
  const published = await wg.rotateKey(async (p) => {
    const info = { ...c.joined.info, ...p };
    await registerNode(c.store, info, c.joined.blocks);
    c.joined.info = info;
  });
  const publicKey = published.wireguard?.publicKey ?? '';
  log.info('rotated the WireGuard key pair: the new public key is in force and published', { publicKey, ...(silent.length > 0 ? { forcedPastSilentAgents: silent.map((s) => s.node) } : {}) });
  return { ok: true, publicKey };
}

/**
 * A pid file in the state dir: two agents on one state would hand out the same addresses. It
 * holds the pid and that process's start time, so a pid reused by another process (after a
 * crash, a reboot) is not taken for an agent; a zombie counts as gone.
 */
async function lockStateDir(stateDir: string): Promise<string> {
  const pidFile = join(stateDir, 'agent.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(pidFile, `${process.pid} ${processStartTime(process.pid) ?? 0}\n`, { flag: 'wx', mode: 0o600 });
      return pidFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const other = pidFileHolder(await fs.readFile(pidFile, 'utf8').catch(() => ''));
      if (other !== undefined && other !== process.pid) throw new Error(`another weft agent (pid ${other}) is using state dir ${stateDir}`);
      await fs.rm(pidFile, { force: true }); // left by an agent that was killed
    }
  }
  throw new Error(`cannot lock state dir ${stateDir}`);
}

/**
 * The node's own values of the sysctls the agent turns on, as they were before any agent did:
 * written once (SYSCTLS_BEFORE_FILE), so `weft uninstall --all` puts them back.
 */
async function keepSysctlsBefore(stateDir: string, keys: string[], log: Logger): Promise<void> {
  const file = join(stateDir, SYSCTLS_BEFORE_FILE);
  let kept: Record<string, string>;
  try {
    kept = JSON.parse(await fs.readFile(file, 'utf8').catch(() => '{}')) as Record<string, string>;
    if (typeof kept !== 'object' || kept === null) throw new Error('not an object');
  } catch (err) {
    // The values before Weft are lost with it: what is there now may be Weft's own.
    log.warn(`${file} cannot be read; uninstall --all will leave forwarding as it is`, { error: (err as Error).message });
    return;
  }
  const missing = keys.filter((k) => kept[k] === undefined);
  if (missing.length === 0) return;
  for (const k of missing) kept[k] = await readSysctl(k);
  writeFileAtomic(file, JSON.stringify(kept) + '\n');
}

/**
 * Attachment records and reservations describe kernel objects (veths, routes) that a reboot
 * removes. State written in another boot is dropped at start, so a rebooted node does not keep
 * addresses for pods that no longer exist (host-local's well-known leak). The file names the
 * boot the state belongs to.
 */
async function dropStateOfOtherBoot(stateDir: string, log: Logger): Promise<void> {
  const file = join(stateDir, 'boot-id');
  const current = await bootId();
  const previous = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  if (previous !== '' && previous !== current) {
    const count = async (d: string): Promise<number> => (await fs.readdir(join(stateDir, d)).catch(() => [] as string[])).length;
    log.warn('the node rebooted since the state was written: dropping attachments and reservations of the previous boot', {
      attachments: await count('attachments'),
      reservations: await count(join('ipam', 'reservations')),
    });
    await fs.rm(join(stateDir, 'attachments'), { recursive: true, force: true });
    await fs.rm(join(stateDir, 'ipam', 'reservations'), { recursive: true, force: true });
    await fs.rm(join(stateDir, APPLIED_TABLE_FILE), { force: true });
  }
  if (previous !== current) await fs.writeFile(file, current + '\n', { mode: 0o600 });
}

export async function startAgent(cfg: AgentConfig): Promise<RunningAgent> {
  const { log } = cfg;
  await fs.mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
  const pidFile = await lockStateDir(cfg.stateDir);
  let server: Server | undefined;
  let metricsServer: Server | undefined;
  let store: Store | undefined;
  let informers: InformerSet | undefined;
  const started: Controller[] = [];
  const helperPath = cfg.datapath || cfg.netlinkHelper === false ? undefined : (cfg.netlinkHelper ?? findNetlinkHelper());
  let runner: BatchRunner = ipProcessRunner;
  let nft: NftRunner = nftProcessRunner;
  /** Stops what started, newest first, then closes what the root opened. */
  const shutdown = async (leaving: boolean): Promise<void> => {
    for (const c of [...started].reverse()) await c.stop(leaving).catch((err: Error) => log.warn('a controller did not stop cleanly', { controller: c.name, error: err.message }));
    informers?.stop();
    await store?.close().catch(() => undefined);
    await runner.close().catch(() => undefined);
    await nft.close().catch(() => undefined);
  };
  try {
    if (helperPath) {
      const helper = new NetlinkHelper(helperPath);
      if (await helper.works()) runner = helper;
      else {
        log.warn('the rtnetlink helper does not run here: pod links are made with ip processes', { helper: helperPath });
        await helper.close();
      }
    }
    let joined: JoinedNode | undefined;
    if (cfg.cluster) {
      store = await openStore(cfg.cluster.datastore);
      joined = await joinCluster(store, { ...cfg.cluster, stateDir: cfg.stateDir, log });
    }
    const podCidrs = joined ? joined.blocks.map(parseCidr) : (cfg.podCidrs ?? []);
    if (podCidrs.length === 0) throw new Error('no pod range: give --pod-cidr, or join a cluster with --datastore');
    const mtu = cfg.mtu ?? joined?.backend.podMtu ?? 1500;
    await keepSysctlsBefore(cfg.stateDir, podCidrs.map((c) => FORWARDING_SYSCTL[c.family]), log);
    for (const c of podCidrs) await ensureSysctl(FORWARDING_SYSCTL[c.family], '1');
    await dropStateOfOtherBoot(cfg.stateDir, log);
    const ipam = await Ipam.open(cfg.stateDir, podCidrs);
    const records = await AttachmentStore.open(cfg.stateDir);
    const cluster = store && joined ? clusterControllers(store, joined, records, log) : undefined;
    informers = cluster?.informers;
    // Policy needs the cluster's objects, so it comes with a datastore; on by default there.
    const policyOn = cluster !== undefined && cfg.cluster?.networkPolicy !== false;
    const nftHelperPath = !policyOn || cfg.nftHelper === false ? undefined : (cfg.nftHelper ?? findNftHelper());
    if (nftHelperPath) {
      const helper = new NftHelper(nftHelperPath, nftProcessRunner);
      if (await helper.works()) nft = helper;
      else {
        log.warn('the nftables helper does not run here: policy is applied with nft processes', { helper: nftHelperPath });
        await helper.close();
      }
    }
    // Fed by the CNI service's socket, the policy loop and the flow reader; read at each scrape.
    let metrics: AgentMetrics | undefined;
    let metricsState: HealthReply['metrics'];
    // Flows come from the policy table's log rules: recorded where policy is enforced.
    const readerPath = policyOn && cfg.flows !== false ? findNflogReader() : undefined;
    if (policyOn && cfg.flows !== false && !readerPath) log.warn('the flow reader (dist/weft-nflog) is not built: flows are not recorded');
    const policy =
      cluster && policyOn
        ? new PolicyController({ store: cluster.store, informers: cluster.informers, nodeName: cluster.joined.nodeName, localBlocks: cluster.joined.blocks, records, log: log.child({ controller: 'policy' }), stateDir: cfg.stateDir, nft, flows: readerPath !== undefined, onSync: (ok, seconds) => metrics?.policySync(ok, seconds), ...(cluster.store.backend === 'kubernetes' ? { podWaitMs: POD_WAIT_MS } : {}) })
        : undefined;
    const flows =
      cluster && policy && readerPath
        ? new FlowsController({ nodeName: cluster.joined.nodeName, capacity: cfg.flows ? cfg.flows.capacity : 4096, readerPath, snapshot: () => policy.snapshot, log: log.child({ controller: 'flows' }) })
        : undefined;
    const service = new CniService({
      ipam,
      records,
      datapath: cfg.datapath ?? kernelDatapath(runner),
      log,
      mtu,
      ...(cfg.pauseAt ? { pauseAt: cfg.pauseAt } : {}),
      ...(cluster
        ? {
            onChange: () => {
              cluster.endpoints.attachmentsChanged();
              policy?.attachmentsChanged();
            },
          }
        : {}),
      ...(policy ? { admit: (rec) => policy.admit(rec) } : {}),
    });
    // Stopped in reverse: the endpoints loop first (nothing re-publishes a pod after the node
    // deregistered), then membership (leaving, peers drop the node before its datapath goes),
    // then policy, masquerade, liveness and routes, which tear down what they made.
    const controllers: Controller[] = cluster ? [cluster.routes, cluster.liveness, cluster.masquerade, ...(flows ? [flows] : []), ...(policy ? [policy] : []), cluster.membership, cluster.endpoints] : [];
    // Pods leave the node through masquerade from their first packet.
    await cluster?.masquerade.prepare();
    cluster?.informers.start();
    for (const c of controllers) {
      c.start();
      started.push(c);
    }
    const health = (): HealthReply => {
      const m = process.memoryUsage();
      return {
        ok: true,
        pools: ipam.status(),
        attachments: records.size,
        memory: { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external },
        mtu,
        ...(cluster ? { cluster: clusterStatus(cluster), rejected: cluster.informers.rejected() } : {}),
        ...(policy ? { policy: policy.status() } : {}),
        ...(flows ? { flows: flows.status() } : {}),
        ...(metricsState ? { metrics: metricsState } : {}),
      };
    };
    metrics = new AgentMetrics({ node: cluster?.joined.nodeName ?? 'single-node', version: WEFT_VERSION, health, policy: policy !== undefined, ...(cluster ? { watchRestarts: () => cluster.informers.watchRestarts() } : {}), ...(flows ? { flowRecords: () => flows.made } : {}) });
    server = await startAgentServer({
      socketPath: cfg.socketPath,
      service,
      log,
      ...(cluster ? { rotateKey: (force: boolean) => rotateNodeKey(cluster, log, force) } : {}),
      ...(flows ? { flows } : {}),
      health,
      metrics: () => metrics,
      doctor: () =>
        doctorView({
          stateDir: cfg.stateDir,
          podMtu: mtu,
          records,
          ipam,
          ...(cluster ? { cluster: { joined: cluster.joined, peers: () => cluster.routes.routedPeers(), leases: () => cluster.informers.of<LeaseObject>('Lease', SYSTEM_NAMESPACE).items() } } : {}),
          ...(policy ? { policyInForce: () => policy.inForce() } : {}),
        }),
    });
    if (cfg.metricsAddress) {
      // Metrics are not worth a node without pod networking: a port taken is said loudly
      // (log, health) and the agent serves on; the socket still answers GET /metrics.
      try {
        metricsServer = await startMetricsServer(cfg.metricsAddress, metrics, log);
        metricsState = { url: metricsUrl(cfg.metricsAddress) };
      } catch (err) {
        metricsState = { error: (err as Error).message };
        log.error('no metrics listener', { error: (err as Error).message });
      }
    }
    log.info('agent ready', {
      socket: cfg.socketPath,
      stateDir: cfg.stateDir,
      podCidrs: podCidrs.map((c) => c.text),
      mtu,
      attachments: records.size,
      reservations: ipam.reservations().length,
      podLinks: runner.name,
      ...(policy ? { policyTable: nft.name } : {}),
      ...(metricsState?.url ? { metrics: metricsState.url } : {}),
    });
    const srv = server;
    const msrv = metricsServer;
    return {
      service,
      ipam,
      records,
      controllers,
      policy,
      stop: async () => {
        await new Promise<void>((resolve) => {
          srv.close(() => resolve());
          srv.closeAllConnections();
        });
        if (msrv) await new Promise<void>((resolve) => msrv.close(() => resolve()));
        await shutdown(cfg.cluster?.leaveOnExit ?? false);
        await fs.rm(cfg.socketPath, { force: true });
        await fs.rm(pidFile, { force: true });
      },
    };
  } catch (err) {
    server?.close();
    metricsServer?.close();
    await shutdown(false);
    await fs.rm(pidFile, { force: true });
    throw err;
  }
}
