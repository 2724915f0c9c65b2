import { promises as fs } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { FORWARDING_SYSCTL, kernelDatapath, type Datapath } from '../datapath/datapath.js';
import { ipProcessRunner, type BatchRunner } from '../kernel/batch-runner.js';
import { findNetlinkHelper, NetlinkHelper } from '../kernel/netlink-helper.js';
import { findNftHelper, NftHelper } from '../kernel/nft-helper.js';
import { nftProcessRunner, type NftRunner } from '../kernel/nft.js';
import { bootId, ensureSysctl } from '../kernel/sysctl.js';
import type { Cidr } from '../ipam/cidr.js';
import { Ipam } from '../ipam/ipam.js';
import { processStartTime } from '../util/lock-file.js';
import type { Logger } from '../util/log.js';
import { AttachmentStore } from './attachment-store.js';
import { ClusterNode, type ClusterNodeConfig } from './cluster-node.js';
import { CniService, type CniServiceDeps } from './cni-service.js';
import { APPLIED_TABLE_FILE, PolicyController } from './policy-controller.js';
import { startAgentServer } from './server.js';

/** The node agent's wiring: state, IPAM, the CNI service and its socket. */
export interface AgentConfig {
  stateDir: string;
  socketPath: string;
  /** Single-node mode: the node's pod ranges. Exclusive with `cluster`. */
  podCidrs?: Cidr[];
  /** Cluster mode: pod ranges are blocks leased from the cluster datastore. */
  cluster?: ClusterNodeConfig & { leaveOnExit: boolean; networkPolicy?: boolean };
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
}

export interface RunningAgent {
  service: CniService;
  ipam: Ipam;
  records: AttachmentStore;
  cluster: ClusterNode | undefined;
  policy: PolicyController | undefined;
  stop(): Promise<void>;
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
      const [pidText, started] = (await fs.readFile(pidFile, 'utf8').catch(() => '')).trim().split(' ');
      const other = Number(pidText);
      const now = Number.isInteger(other) && other > 0 && other !== process.pid ? processStartTime(other) : undefined;
      if (now !== undefined && (started === undefined || started === now)) {
        throw new Error(`another weft agent (pid ${other}) is using state dir ${stateDir}`);
      }
      await fs.rm(pidFile, { force: true }); // left by an agent that was killed
    }
  }
  throw new Error(`cannot lock state dir ${stateDir}`);
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
  let cluster: ClusterNode | undefined;
  let policyController: PolicyController | undefined;
  const helperPath = cfg.datapath || cfg.netlinkHelper === false ? undefined : (cfg.netlinkHelper ?? findNetlinkHelper());
  let runner: BatchRunner = ipProcessRunner;
  let nft: NftRunner = nftProcessRunner;
  try {
    if (helperPath) {
      const helper = new NetlinkHelper(helperPath);
      if (await helper.works()) runner = helper;
      else {
        log.warn('the rtnetlink helper does not run here: pod links are made with ip processes', { helper: helperPath });
        await helper.close();
      }
    }
    if (cfg.cluster) cluster = await ClusterNode.join(cfg.cluster);
    const podCidrs = cluster ? cluster.podCidrs : (cfg.podCidrs ?? []);
    if (podCidrs.length === 0) throw new Error('no pod range: give --pod-cidr, or join a cluster with --datastore');
    const mtu = cfg.mtu ?? cluster?.backend.podMtu ?? 1500;
    for (const c of podCidrs) await ensureSysctl(FORWARDING_SYSCTL[c.family], '1');
    await dropStateOfOtherBoot(cfg.stateDir, log);
    const ipam = await Ipam.open(cfg.stateDir, podCidrs);
    const records = await AttachmentStore.open(cfg.stateDir);
    const clusterNode = cluster;
    // Policy needs the cluster's objects, so it comes with a datastore; on by default there.
    const policyOn = clusterNode && cfg.cluster && cfg.cluster.networkPolicy !== false;
    const nftHelperPath = !policyOn || cfg.nftHelper === false ? undefined : (cfg.nftHelper ?? findNftHelper());
    if (nftHelperPath) {
      const helper = new NftHelper(nftHelperPath, nftProcessRunner);
      if (await helper.works()) nft = helper;
      else {
        log.warn('the nftables helper does not run here: policy is applied with nft processes', { helper: nftHelperPath });
        await helper.close();
      }
    }
    const policy =
      clusterNode && cfg.cluster && policyOn
        ? new PolicyController({ store: cfg.cluster.store, nodeName: cfg.cluster.nodeName, localBlocks: clusterNode.blocks, records, log: log.child({ controller: 'policy' }), stateDir: cfg.stateDir, nft })
        : undefined;
    policyController = policy;
    const service = new CniService({
      ipam,
      records,
      datapath: cfg.datapath ?? kernelDatapath(runner),
      log,
      mtu,
      ...(cfg.pauseAt ? { pauseAt: cfg.pauseAt } : {}),
      ...(clusterNode
        ? {
            onChange: () => {
              clusterNode.attachmentsChanged();
              policy?.attachmentsChanged();
            },
          }
        : {}),
      ...(policy ? { admit: (rec) => policy.admit(rec) } : {}),
    });
    clusterNode?.start(records);
    policy?.start();
    server = await startAgentServer({
      socketPath: cfg.socketPath,
      service,
      log,
      health: () => {
        const m = process.memoryUsage();
        return {
          ok: true,
          pools: ipam.status(),
          attachments: records.size,
          memory: { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external },
          mtu,
          ...(clusterNode ? { cluster: clusterNode.status() } : {}),
          ...(policy ? { policy: policy.status() } : {}),
          ...(clusterNode ? { rejected: [...new Set([...clusterNode.rejected(), ...(policy?.rejected() ?? [])])].sort() } : {}),
        };
      },
    });
    log.info('agent ready', {
      socket: cfg.socketPath,
      stateDir: cfg.stateDir,
      podCidrs: podCidrs.map((c) => c.text),
      mtu,
      attachments: records.size,
      reservations: ipam.reservations().length,
      podLinks: runner.name,
      ...(policy ? { policyTable: nft.name } : {}),
    });
    const srv = server;
    return {
      service,
      ipam,
      records,
      cluster: clusterNode,
      policy,
      stop: async () => {
        await new Promise<void>((resolve) => {
          srv.close(() => resolve());
          srv.closeAllConnections();
        });
        await policy?.stop(cfg.cluster?.leaveOnExit ?? false);
        await clusterNode?.stop(cfg.cluster?.leaveOnExit ?? false);
        await runner.close();
        await nft.close();
        await fs.rm(cfg.socketPath, { force: true });
        await fs.rm(pidFile, { force: true });
      },
    };
  } catch (err) {
    server?.close();
    await policyController?.stop(false).catch(() => undefined);
    await cluster?.stop(false).catch(() => undefined);
    await runner.close().catch(() => undefined);
    await nft.close().catch(() => undefined);
    await fs.rm(pidFile, { force: true });
    throw err;
  }
}
