import type { Command } from 'commander';
import { DEFAULT_METRICS_ADDRESS, parseMetricsAddress } from '../agent/metrics-server.js';
import { DEFAULT_SOCKET } from '../agent/api.js';
import { startAgent } from '../agent/agent.js';
import { ADD_PHASES, type AddPhase } from '../agent/cni-service.js';
import { hostname } from 'node:os';
import type { AgentClusterConfig } from '../agent/agent.js';
import { validateBlockSize } from '../cluster/blocks.js';
import type { ClusterDefaults } from '../cluster/membership.js';
import { checkDatastoreOptions } from '../datastore/open-store.js';
import { AddressError, isValidAddress, parseCidr, type Cidr } from '../ipam/cidr.js';
import { BACKENDS, ENCRYPTIONS, IPAM_MODES, type BackendType, type EncryptionType, type IpamMode } from '../model/objects.js';
import { DEFAULT_WIREGUARD_PORT } from '../datapath/backend-type.js';
import { createLogger, type Logger, type LogLevel } from '../util/log.js';
import { UserError } from '../util/user-error.js';

export const DEFAULT_STATE_DIR = '/var/lib/weft';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parsePodCidrs(values: string[], flag = '--pod-cidr'): Cidr[] {
  if (values.length === 0) {
    throw new UserError(`${flag} is required (e.g. ${flag} 10.244.1.0/24 ${flag} fd00:244:1::/64), or join a cluster with --datastore`);
  }
  if (values.length > 2) throw new UserError(`at most two ${flag}: one IPv4 and one IPv6`);
  const cidrs = values.map((v) => {
    try {
      return parseCidr(v);
    } catch (err) {
      throw new UserError(`${flag}: ${(err as AddressError).message}`);
    }
  });
  if (cidrs.length === 2 && cidrs[0]?.family === cidrs[1]?.family) {
    throw new UserError(`the two ${flag} must be of different families (one IPv4, one IPv6)`);
  }
  return cidrs;
}

export function parseMtu(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw new UserError(`--mtu ${v}: expected an integer 68-65535`);
  return n;
}

/** WEFT_TEST_PAUSE_ADD=PHASE:MS — a fault point for crash tests only; never set in production. */
export function testPauseFromEnv(value: string | undefined): { phase: AddPhase; ms: number } | undefined {
  if (!value) return undefined;
  const [phase, ms] = value.split(':');
  if (!(ADD_PHASES as readonly string[]).includes(phase ?? '') || !/^\d+$/.test(ms ?? '')) {
    throw new UserError(`WEFT_TEST_PAUSE_ADD=${value}: expected PHASE:MS with PHASE one of ${ADD_PHASES.join(', ')}`);
  }
  return { phase: phase as AddPhase, ms: Number(ms) };
}

interface AgentOptions {
  stateDir: string;
  socket: string;
  podCidr: string[];
  mtu?: string;
  logLevel: string;
  datastore?: string;
  datastoreDir?: string;
  etcdEndpoints?: string;
  kubeconfig?: string;
  ipam?: string;
  nodeName?: string;
  nodeIp: string[];
  clusterCidr: string[];
  blockSizeV4: string;
  blockSizeV6: string;
  backend?: string;
  vxlanVni: string;
  vxlanPort: string;
  encryption?: string;
  wireguardPort: string;
  wireguardDevice?: string;
  leaseDuration: string;
  nodeGrace: string;
  leaveOnExit?: boolean;
  networkPolicy: boolean;
  netlinkHelper: boolean;
  nftHelper: boolean;
  flows: string;
  flowBuffer: string;
  metricsAddress: string;
}

function intFlag(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new UserError(`--${name} ${v}: expected an integer ${min}-${max}`);
  return n;
}

/**
 * An exception nothing expected means the agent's state can no longer be trusted: it logs and
 * exits non-zero at once, so its supervisor (systemd, a DaemonSet) starts a fresh one, rather
 * than running half-dead. Exiting is safe: the kernel state outlives the agent, and a restart
 * changes nothing in any data path.
 */
function guardProcess(log: Logger): void {
  const die = (what: string) => (err: unknown): void => {
    log.error(`${what}: the agent exits so that its supervisor restarts it`, { error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
    process.exit(70); // EX_SOFTWARE
  };
  process.on('uncaughtException', die('unexpected exception'));
  process.on('unhandledRejection', die('unhandled promise rejection'));
}

/** "24h", "90m", "45s", "2d", "0" (never) → seconds. */
export function parseDuration(flag: string, v: string): number {
  const m = /^(\d{1,7})(s|m|h|d)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'] : Number.NaN;
  if (!m || n > 366 * 86_400) throw new UserError(`${flag} ${v}: expected a duration such as 24h, 90m or 2d (at most a year), or 0 for never`);
  return n;
}

function clusterConfig(o: AgentOptions): AgentClusterConfig {
  if (o.podCidr.length > 0) throw new UserError('--pod-cidr is for a single node; in a cluster (--datastore) nodes lease blocks of --cluster-cidr');
  const nodeIps = o.nodeIp.map((a) => {
    if (!isValidAddress(a)) throw new UserError(`--node-ip ${a}: not an IP address`);
    return a;
  });
  // Empty: not given (a ConfigMap key left blank reaches the agent as an empty flag).
  const encryption = o.encryption === undefined || o.encryption === '' ? undefined : o.encryption;
  if (encryption !== undefined && !(ENCRYPTIONS as readonly string[]).includes(encryption)) throw new UserError(`--encryption ${encryption}: expected ${ENCRYPTIONS.join(' or ')}`);
  // "weft." first: every link of that prefix is Weft's (what `uninstall --all` removes).
  if (o.wireguardDevice !== undefined && !/^weft\.[A-Za-z0-9_-]{1,10}$/.test(o.wireguardDevice)) throw new UserError(`--wireguard-device ${o.wireguardDevice}: expected "weft." and 1-10 letters, digits, "_" or "-" (an interface name of at most 15 characters)`);
  let defaults: ClusterDefaults | undefined;
  if (o.clusterCidr.length > 0) {
    // Also comma-separated: one manifest value (a ConfigMap's) can carry both families.
    const cidrs = parsePodCidrs(o.clusterCidr.flatMap((v) => v.split(',')).filter((v) => v !== ''), '--cluster-cidr');
    const blockSize = { ipv4: intFlag('block-size-v4', o.blockSizeV4, 8, 30), ipv6: intFlag('block-size-v6', o.blockSizeV6, 48, 126) };
    for (const c of cidrs) {
      try {
        validateBlockSize(c, c.family === 4 ? blockSize.ipv4 : blockSize.ipv6);
      } catch (err) {
        throw new UserError((err as Error).message);
      }
    }
    const backend = o.backend ?? 'vxlan';
    if (!(BACKENDS as readonly string[]).includes(backend)) throw new UserError(`--backend ${backend}: expected ${BACKENDS.join(' or ')}`);
    // Where blocks come from: Kubernetes' allocations on the Kubernetes datastore, else Weft's leases.
    const ipam = o.ipam ?? (o.datastore === 'kubernetes' ? 'kubernetes' : 'cluster-pool');
    if (!(IPAM_MODES as readonly string[]).includes(ipam)) throw new UserError(`--ipam ${ipam}: expected ${IPAM_MODES.join(' or ')}`);
    if (ipam === 'kubernetes' && o.datastore !== 'kubernetes') throw new UserError('--ipam kubernetes takes pod blocks from Node.spec.podCIDRs, which only --datastore kubernetes has: use --ipam cluster-pool');
    defaults = {
      podCIDRs: cidrs.map((c) => c.text),
      ...(encryption === 'wireguard' ? { encryption: { type: 'wireguard' as const, port: intFlag('wireguard-port', o.wireguardPort, 1, 65535) } } : {}),
      ipam: ipam as IpamMode,
      blockSize,
      backend: { type: backend as BackendType, vni: intFlag('vxlan-vni', o.vxlanVni, 1, 16_777_215), port: intFlag('vxlan-port', o.vxlanPort, 1, 65535) },
      leaseDurationSeconds: intFlag('lease-duration', o.leaseDuration, 3, 3600),
      nodeGraceSeconds: parseDuration('--node-grace', o.nodeGrace),
    };
  }
  const datastore = { ...(o.datastore !== undefined ? { datastore: o.datastore } : {}), ...(o.datastoreDir !== undefined ? { datastoreDir: o.datastoreDir } : {}), ...(o.etcdEndpoints !== undefined ? { etcdEndpoints: o.etcdEndpoints } : {}), ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}) };
  checkDatastoreOptions(datastore);
  return {
    datastore,
    nodeName: o.nodeName ?? hostname(),
    nodeIps,
    defaults,
    ...(encryption !== undefined ? { encryption: encryption as EncryptionType } : {}),
    ...(o.wireguardDevice !== undefined ? { wireguardDevice: o.wireguardDevice } : {}),
    leaveOnExit: o.leaveOnExit === true,
    networkPolicy: o.networkPolicy,
  };
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: serves the CNI plugin on a unix socket, owns IPAM and the pod datapath')
    .option('--state-dir <dir>', 'where IPAM reservations and attachment records live', DEFAULT_STATE_DIR)
    .option('--socket <path>', 'unix socket the plugin talks to (created mode 0600)', DEFAULT_SOCKET)
    .option('--pod-cidr <cidr>', "single node: this node's pod range; once per family (IPv4, IPv6)", collect, [] as string[])
    .option('--mtu <n>', 'pod interface MTU unless the network config sets one, or auto (the default: 1500 on one node; in a cluster, the uplink\'s less the backend\'s overhead)')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .option('--datastore <kind>', 'join a cluster through this datastore: file, etcd or kubernetes')
    .option('--datastore-dir <dir>', 'the file datastore directory (shared by the nodes of one host)')
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma-separated, e.g. http://10.0.0.1:2379')
    .option('--kubeconfig <file>', '--datastore kubernetes: the API and credentials (default: KUBECONFIG, else the pod\'s service account)')
    .option('--node-name <name>', "this node's name (default: the hostname)")
    .option('--node-ip <addr>', "this node's underlay address, once per family (default: the default route's interface)", collect, [] as string[])
    .option('--cluster-cidr <cidr>', 'first node only: the cluster pod range, once per family (or both, comma-separated)', collect, [] as string[])
    .option('--block-size-v4 <n>', 'first node only: prefix length of each node\'s IPv4 block', '24')
    .option('--block-size-v6 <n>', 'first node only: prefix length of each node\'s IPv6 block', '64')
    .option('--backend <type>', 'first node only: vxlan or host-gw (default vxlan)')
    .option('--ipam <mode>', 'first node only: kubernetes (pod blocks are Node.spec.podCIDRs; the default with --datastore kubernetes) or cluster-pool (Weft leases blocks of --cluster-cidr; the default otherwise)')
    .option('--vxlan-vni <n>', 'first node only: VXLAN network identifier', '1')
    .option('--vxlan-port <n>', 'first node only: VXLAN UDP port', '8472')
    .option('--encryption <type>', 'none or wireguard: encrypt pod traffic between nodes (first node: sets it for the cluster, default none; any other node: refuses to start unless it is the cluster\'s)')
    .option('--wireguard-port <n>', 'first node only: the UDP port of every node\'s WireGuard device', String(DEFAULT_WIREGUARD_PORT))
    .option('--wireguard-device <name>', 'the WireGuard device\'s name (default weft.wg; nodes sharing one machine, as a lab\'s do, need one each)')
    .option('--lease-duration <s>', 'first node only: seconds an agent counts as alive without renewing its lease (reported; routes stay)', '40')
    .option('--node-grace <duration>', 'first node only: how long an agent may stay silent before its node counts as gone and is removed (e.g. 24h, 90m; 0 = never)', '24h')
    .option('--leave-on-exit', 'on SIGTERM, leave the cluster: peers drop this node and its blocks are freed (without it, a stopped agent\'s node keeps its routes)')
    .option('--no-network-policy', 'in a cluster: do not enforce NetworkPolicy and WeftClusterPolicy (every pod reaches every pod)')
    .option('--no-netlink-helper', 'make pod links with `ip` processes instead of the rtnetlink helper (dist/weft-netlink)')
    .option('--no-nft-helper', 'apply the policy table with an `nft` process per change instead of the nftables helper (dist/weft-nft)')
    .option('--flows <on|off>', 'in a cluster with policy: record flows (drops with their deciding rule, new connections) for `weft flows`', 'on')
    .option('--flow-buffer <n>', 'flow records each node keeps (the oldest make room)', '4096')
    .option('--metrics-address <addr>', 'where Prometheus scrapes the agent (GET /metrics), ADDRESS:PORT; "" for no metrics listener', DEFAULT_METRICS_ADDRESS)
    .action(async (o: AgentOptions) => {
      const level = o.logLevel as LogLevel;
      if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UserError(`--log-level ${o.logLevel}: expected debug, info, warn or error`);
      const log = createLogger(level, { component: 'agent' });
      guardProcess(log);
      const cluster = o.datastore !== undefined ? clusterConfig(o) : undefined;
      const podCidrs = cluster ? undefined : parsePodCidrs(o.podCidr);
      const mtu = o.mtu !== undefined && o.mtu !== 'auto' ? parseMtu(o.mtu) : undefined;
      const pauseAt = testPauseFromEnv(process.env['WEFT_TEST_PAUSE_ADD']);
      if (o.flows !== 'on' && o.flows !== 'off') throw new UserError(`--flows ${o.flows}: expected on or off`);
      const metricsAddress = parseMetricsAddress(o.metricsAddress);
      const flows = o.flows === 'on' ? { capacity: intFlag('flow-buffer', o.flowBuffer, 16, 100_000) } : (false as const);
      let agent;
      try {
        agent = await startAgent({
          stateDir: o.stateDir,
          socketPath: o.socket,
          ...(podCidrs ? { podCidrs } : {}),
          ...(cluster ? { cluster } : {}),
          ...(mtu !== undefined ? { mtu } : {}),
          log,
          ...(pauseAt ? { pauseAt } : {}),
          ...(o.netlinkHelper === false ? { netlinkHelper: false as const } : {}),
          ...(o.nftHelper === false ? { nftHelper: false as const } : {}),
          flows,
          ...(metricsAddress ? { metricsAddress } : {}),
        });
      } catch (err) {
        if (err instanceof AddressError) throw new UserError(err.message);
        throw err;
      }
      const running = agent;
      await new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          log.info('stopping', { signal: sig });
          void running.stop().then(() => {
            log.info('agent stopped', { signal: sig });
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
