import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { AGENT_NODE_FLAGS, type ClusterStatus, type HealthReply } from '../agent/api.js';
import { getHealth, rotateKey, waitForAgent } from '../agent/health-client.js';
import { admitted } from '../datastore/admitted-store.js';
import { EtcdStore } from '../datastore/etcd-store.js';
import { FileStore } from '../datastore/file-store.js';
import { KubeClient, statusOf } from '../datastore/kube-client.js';
import { kubeconfigConnection } from '../datastore/kube-connection.js';
import { KubernetesStore } from '../datastore/kubernetes-store.js';
import { isStoreError, type Store } from '../datastore/store.js';
import { leaveCluster } from '../cluster/membership.js';
import { install } from '../install/install.js';
import { endProcess, startDaemon } from '../kernel/exec.js';
import { pidFileHolder, processStartTime } from '../util/lock-file.js';
import { ipBatch, ipc } from '../kernel/ip.js';
import { deleteNamedNetns, netnsPids } from '../kernel/netns.js';
import { UAPI_DIR } from '../kernel/wireguard.js';
import { SYSTEM_NAMESPACE, type BackendType, type LeaseObject, type NamespaceObject, type NodeObject } from '../model/objects.js';
import { snapshotFingerprint } from '../policy/from-objects.js';
import { readSnapshot } from '../policy/load.js';
import { UserError } from '../util/user-error.js';
import { createNodeNetns, createSwitch, destroyNamespaces, EXTERNAL, labNamespaces } from './lab-net.js';
import { labDir, labLock, labPrefix, listLabs, loadLab, saveLab, validateLabName, type LabNode, type LabState } from './lab-state.js';

/**
 * `weft lab up|down|status`: a cluster of nodes in network namespaces on this machine, each
 * node running its own agent against a shared datastore (a file directory, or a real etcd in
 * the lab's switch netns reached through a unix socket), pods attached with the real plugin.
 */
export interface UpOptions {
  name: string;
  nodes: number;
  backend: BackendType;
  /** Encryption between the nodes (absent: none). */
  encryption?: 'wireguard';
  datastore: 'file' | 'etcd' | 'kubernetes';
  /** dist/weft.mjs: what the agents and pod servers run. */
  cliEntry: string;
  leaseDurationSeconds?: number;
  nodeGraceSeconds?: number;
  /** The agents' --log-level (default info); debug adds each policy sync's timings. */
  agentLogLevel?: 'debug' | 'info';
  /** More agent flags, for benchmarks comparing agent options (e.g. --no-nft-helper). */
  extraAgentArgs?: string[];
  progress?: (line: string) => void;
}

export const LAB_CLUSTER_CIDRS = ['10.244.0.0/16', 'fd00:10:244::/56'];

/** The lab's datastore, admitting what it reads and writes (as the agents' does). */
export async function openLabStore(state: LabState): Promise<Store> {
  const ds = state.datastore;
  if (ds.kind === 'kubernetes') return admitted(new KubernetesStore(kubeconfigConnection(ds.kubeconfig), 'weft-lab'));
  return admitted(ds.kind === 'file' ? FileStore.open(ds.dir) : await EtcdStore.connect([ds.endpoint]));
}

export async function withLabStore<R>(state: LabState, fn: (store: Store) => Promise<R>): Promise<R> {
  const store = await openLabStore(state);
  try {
    return await fn(store);
  } catch (err) {
    if (isStoreError(err, 'Unavailable')) throw new UserError(`the lab's datastore is not reachable: ${err.message}`);
    throw err;
  } finally {
    await store.close();
  }
}

async function startEtcd(state: LabState): Promise<number> {
  const args = [
    '--name', 'lab',
    '--data-dir', join(state.dir, 'etcd'),
    // The client endpoint is a unix socket in the lab directory: reachable from every node's
    // agent and from this CLI alike, with no address anywhere but the switch's own loopback.
    // etcd takes it only as unix://NAME:PORT, relative to its working directory (the lab's);
    // the file is "etcd.sock:2379", which clients name by absolute path (etcdEndpoint).
    '--listen-client-urls', 'unix://etcd.sock:2379',
    '--advertise-client-urls', 'unix://etcd.sock:2379',
    '--listen-peer-urls', 'http://127.0.0.1:2380',
    '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'lab=http://127.0.0.1:2380',
    '--log-level', 'error',
  ];
  const child = await startDaemon('etcd', args, { netns: `/run/netns/${state.switchNetns}`, logFile: join(state.dir, 'etcd.log'), cwd: state.dir, detached: true });
  return child.pid as number;
}

/**
 * The Kubernetes API stand-in (test/helpers/kube-standin-main.ts): test code, run from a built
 * checkout, never part of what is installed. A unix socket in the lab directory, as etcd's.
 */
async function startKubeApi(state: LabState, cliEntry: string): Promise<number> {
  const ds = state.datastore;
  if (ds.kind !== 'kubernetes') throw new Error('not a kubernetes lab');
  const script = join(dirname(cliEntry), '..', 'build', 'test', 'helpers', 'kube-standin-main.js');
  if (!existsSync(script)) throw new UserError(`--datastore kubernetes runs the tests' Kubernetes API stand-in, which is not built here (${script}): run \`npm run build\` in a checkout`);
  const child = await startDaemon(process.execPath, [script, '--socket', ds.socket, '--kubeconfig-dir', state.dir], { netns: `/run/netns/${state.switchNetns}`, logFile: join(state.dir, 'kube-api.log'), detached: true });
  return child.pid as number;
}

/** Kinds of deploy/weft.yaml the lab applies (no controller here runs a DaemonSet), and where each is created. */
const INSTALLED: Readonly<Record<string, (ns: string) => string>> = {
  Namespace: () => '/api/v1/namespaces',
  ServiceAccount: (ns) => `/api/v1/namespaces/${ns}/serviceaccounts`,
  ClusterRole: () => '/apis/rbac.authorization.k8s.io/v1/clusterroles',
  ClusterRoleBinding: () => '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  Role: (ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
  RoleBinding: (ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
};

/**
 * What a cluster has before Weft's agents run: Weft's CRDs, its namespace, and the service account
 * and RBAC of deploy/weft.yaml — the agents use that account, so every lab on the stand-in checks
 * that the manifests grant what the agents do.
 */
async function prepareKubeApi(state: LabState, cliEntry: string): Promise<void> {
  const ds = state.datastore;
  if (ds.kind !== 'kubernetes') return;
  const client = new KubeClient(kubeconfigConnection(ds.kubeconfig), 'weft-lab');
  try {
    const crds = parseAllDocuments(readFileSync(join(dirname(cliEntry), '..', 'deploy', 'crds.yaml'), 'utf8')).map((d) => d.toJSON() as unknown);
    for (const crd of crds) {
      const res = await client.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd });
      if (res.status !== 201 && res.status !== 409) throw new Error(`installing Weft's CRDs: ${statusOf(res.status, res.body).message}`);
    }
    const docs = parseAllDocuments(readFileSync(join(dirname(cliEntry), '..', 'deploy', 'weft.yaml'), 'utf8')).map((d) => d.toJSON() as { kind?: string; metadata?: { namespace?: string } } | null);
    for (const doc of docs) {
      const at = doc?.kind !== undefined ? INSTALLED[doc.kind] : undefined;
      if (!doc || !at) continue;
      const res = await client.request('POST', at(doc.metadata?.namespace ?? ''), { body: doc });
      if (res.status !== 201 && res.status !== 409) throw new Error(`installing deploy/weft.yaml's ${doc.kind}: ${statusOf(res.status, res.body).message}`);
    }
  } finally {
    client.close();
  }
  await withLabStore(state, async (store) => {
    await store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NAMESPACE } }).catch((err: unknown) => {
      if (!isStoreError(err, 'AlreadyExists')) throw err;
    });
  });
}

/**
 * On Kubernetes the kubelet registers each node and the controller manager gives it pod blocks
 * (spec.podCIDRs, --allocate-node-cidrs): in the lab, the lab does both, before the node's
 * agent starts — node-i gets the i-th /24 and /64 of the lab's cluster ranges.
 */
async function registerAsKubelet(state: LabState, node: LabNode): Promise<void> {
  if (state.datastore.kind !== 'kubernetes') return;
  const i = Number(node.name.replace('node-', '')) - 1;
  const podCIDRs = [`10.244.${i}.0/24`, `fd00:10:244:${i.toString(16)}::/64`];
  const obj: NodeObject = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux' } },
    spec: { podCIDR: podCIDRs[0], podCIDRs },
    status: { addresses: [...node.ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: node.name }] },
  };
  await withLabStore(state, (s) => s.create(obj)).catch((err: unknown) => {
    if (!isStoreError(err, 'AlreadyExists')) throw err;
  });
}

export function etcdEndpoint(dir: string): string {
  return `unix://${join(dir, 'etcd.sock')}:2379`;
}
// (unix:// + an absolute path gives unix:///run/…/etcd.sock:2379, which gRPC clients accept.)

async function waitForStore(state: LabState): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await withLabStore(state, (s) => s.list('Namespace'));
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the lab's datastore did not come up: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * A lab node's WireGuard device name. The nodes share this machine's /var/run/wireguard, where
 * wireguard-go serves each device's configuration socket by name: one name per node (and per
 * lab: labs run side by side).
 */
export function labWireguardDevice(node: LabNode): string {
  return `weft.wg${createHash('sha256').update(node.netns).digest('hex').slice(0, 8)}`;
}

/**
 * Starts a node's agent. Lab agents leave the cluster when stopped (a node the lab stops is a
 * node leaving: peers drop it at once); `leaveOnExit: false` starts one as a DaemonSet does,
 * whose stop is a restart or an upgrade.
 */
export async function startNodeAgent(state: LabState, node: LabNode, cliEntry: string, o: { leaveOnExit?: boolean } = {}): Promise<void> {
  const d = state.datastore;
  const ds = d.kind === 'file' ? ['--datastore', 'file', '--datastore-dir', d.dir] : d.kind === 'etcd' ? ['--datastore', 'etcd', '--etcd-endpoints', d.endpoint] : ['--datastore', 'kubernetes', '--kubeconfig', d.agentKubeconfig ?? d.kubeconfig];
  await registerAsKubelet(state, node);
  const args = [
    ...AGENT_NODE_FLAGS,
    cliEntry, 'agent',
    '--state-dir', node.stateDir,
    '--socket', node.socket,
    ...ds,
    '--node-name', node.name,
    ...node.ips.flatMap((a) => ['--node-ip', a]),
    ...state.clusterCidrs.flatMap((c) => ['--cluster-cidr', c]),
    '--backend', state.backend,
    ...(state.encryption ? ['--encryption', state.encryption, '--wireguard-device', labWireguardDevice(node)] : []),
    '--lease-duration', String(state.leaseDurationSeconds),
    ...(state.nodeGraceSeconds !== undefined ? ['--node-grace', String(state.nodeGraceSeconds)] : []),
    ...(o.leaveOnExit === false ? [] : ['--leave-on-exit']),
    ...(state.agentLogLevel ? ['--log-level', state.agentLogLevel] : []),
    ...(state.extraAgentArgs ?? []),
  ];
  const env = { ...process.env };
  delete env['NODE_EXTRA_CA_CERTS'];
  const child = await startDaemon(process.execPath, args, { netns: `/run/netns/${node.netns}`, logFile: node.log, env, detached: true });
  node.agentPid = child.pid as number;
  try {
    await waitForAgent(node.socket, 30_000, () => (child.exitCode !== null ? `exit ${child.exitCode}` : undefined));
  } catch (err) {
    throw new Error(`the agent of ${node.name} did not start: ${(err as Error).message} (log: ${node.log})`);
  }
}

/**
 * Waits until every running agent enforces the datastore's current policy state: each reports
 * the fingerprint of the objects its table was compiled from, and all must equal the one
 * computed here from the store. Returns how long that took. An agent whose process is gone (it
 * crashed, or a test killed it) enforces nothing new until it is back: it is not waited for.
 */
export async function waitPolicyConverged(state: LabState, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  const running = state.nodes.filter((n) => n.agentPid !== undefined && processStartTime(n.agentPid) !== undefined);
  // One store connection for the wait; the wanted state is read again each round (others may write).
  return withLabStore(state, async (store) => {
    for (;;) {
      const want = snapshotFingerprint((await readSnapshot(store)).snapshot);
      const views = await Promise.all(running.map((n) => getHealth(n.socket).catch(() => undefined)));
      // An agent that enforces no policy (--no-network-policy) has nothing to wait for.
      if (views.every((h) => h !== undefined && (h.policy === undefined || h.policy.fingerprint === want))) return Date.now() - t0;
      if (Date.now() > deadline) {
        const seen = views.map((h, i) => `${running[i]?.name}: ${h?.policy ? (h.policy.fingerprint === want ? 'current' : `behind${h.policy.error ? ` (${h.policy.error})` : ''}`) : h ? 'no policy status' : 'not answering'}`).join('; ');
        throw new Error(`policy did not reach every node within ${timeoutMs / 1000} s (${seen})`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  });
}

/** Waits until every agent sees every other node (routes converged). */
export async function waitConverged(state: LabState, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(state.nodes.map((n) => getHealth(n.socket).catch(() => undefined)));
    const ok = views.every((h) => h?.cluster && h.cluster.peers.length === state.nodes.length - 1);
    if (ok) return;
    if (Date.now() > deadline) {
      const seen = views.map((h, i) => `${state.nodes[i]?.name}: ${h?.cluster ? h.cluster.peers.join(',') || 'no peers' : 'not answering'}`).join('; ');
      throw new Error(`the nodes did not all see each other within ${timeoutMs / 1000} s (${seen})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function labUp(o: UpOptions): Promise<LabState> {
  validateLabName(o.name);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 20) throw new UserError(`--nodes ${o.nodes}: expected 1-20`);
  const say = o.progress ?? (() => undefined);
  const dir = labDir(o.name);
  const prefix = labPrefix(o.name);
  if (existsSync(join(dir, 'lab.json'))) throw new UserError(`lab ${o.name} is already running; \`weft lab down --name ${o.name}\` first`);
  const leftovers = await labNamespaces(prefix);
  if (leftovers.length) {
    say(`removing leftovers of an earlier lab ${o.name} (${leftovers.length} namespaces)`);
    await destroyNamespaces(prefix);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state: LabState = {
    version: 1,
    name: o.name,
    prefix,
    dir,
    createdAt: new Date().toISOString(),
    backend: o.backend,
    ...(o.encryption ? { encryption: o.encryption } : {}),
    datastore:
      o.datastore === 'file'
        ? { kind: 'file', dir: join(dir, 'datastore') }
        : o.datastore === 'etcd'
          ? { kind: 'etcd', endpoint: etcdEndpoint(dir), dataDir: join(dir, 'etcd') }
          : { kind: 'kubernetes', socket: join(dir, 'kube-api.sock'), kubeconfig: join(dir, 'kubeconfig'), agentKubeconfig: join(dir, 'kubeconfig-agent') },
    clusterCidrs: LAB_CLUSTER_CIDRS,
    leaseDurationSeconds: o.leaseDurationSeconds ?? 10,
    ...(o.nodeGraceSeconds !== undefined ? { nodeGraceSeconds: o.nodeGraceSeconds } : {}),
    ...(o.agentLogLevel ? { agentLogLevel: o.agentLogLevel } : {}),
    ...(o.extraAgentArgs?.length ? { extraAgentArgs: o.extraAgentArgs } : {}),
    switchNetns: `${prefix}.sw`,
    external: { netns: `${prefix}.ext`, ips: [EXTERNAL.v4, EXTERNAL.v6], control: join(dir, 'external.sock') },
    nodes: [],
    pods: [],
  };
  try {
    await labLock(o.name).run(async () => {
      say(`underlay switch and an external host (netns ${prefix}.sw, ${prefix}.ext)`);
      await createSwitch(state.switchNetns, state.external.netns);
      if (state.datastore.kind === 'etcd') {
        say('datastore: etcd in the switch netns, clients through a unix socket');
        state.datastore.pid = await startEtcd(state);
      } else if (state.datastore.kind === 'kubernetes') {
        say("datastore: the Kubernetes API — the tests' stand-in, on a unix socket; the lab registers each node as a kubelet would");
        state.datastore.pid = await startKubeApi(state, o.cliEntry);
      } else {
        say(`datastore: files in ${state.datastore.dir}`);
      }
      saveLab(state);
      await waitForStore(state);
      await prepareKubeApi(state, o.cliEntry);
      state.nextNodeIndex = o.nodes + 1;
      for (let i = 1; i <= o.nodes; i++) {
        const ips = await createNodeNetns(state.switchNetns, `${prefix}.node-${i}`, i);
        const node = newNode(state, i, ips);
        mkdirSync(node.dir, { recursive: true });
        await install({ binDir: node.binDir, confDir: node.confDir, socket: node.socket, name: `${prefix}-net`, chain: [] });
        state.nodes.push(node);
      }
      say(`${o.nodes} node${o.nodes > 1 ? 's' : ''}, each a netns with its own weft agent (${o.encryption ? `pod traffic between nodes encrypted by ${o.encryption}` : `${o.backend} backend`})`);
      // In order, so the ClusterNetwork comes from node-1 and blocks follow node order.
      for (const n of state.nodes) await startNodeAgent(state, n, o.cliEntry);
      saveLab(state);
      say('waiting until every node routes to every other');
      await waitConverged(state);
      const ext = await startDaemon(process.execPath, [o.cliEntry, 'lab', 'pod-server', '--identity', 'external', '--control', state.external.control, '--port', '80/TCP', '--port', '53/UDP'], {
        netns: `/run/netns/${state.external.netns}`,
        logFile: join(dir, 'external.log'),
        detached: true,
      });
      state.external.serverPid = ext.pid as number;
      await withLabStore(state, async (store) => {
        const ns: NamespaceObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'kubernetes.io/metadata.name': 'default' } } };
        await store.create(ns).catch((err: unknown) => {
          if (!isStoreError(err, 'AlreadyExists')) throw err;
        });
      });
      saveLab(state);
    });
  } catch (err) {
    await labDown(o.name).catch(() => undefined);
    throw err;
  }
  return state;
}

function newNode(state: LabState, index: number, ips: string[]): LabNode {
  const name = `node-${index}`;
  const nd = join(state.dir, 'nodes', name);
  return {
    name,
    netns: `${state.prefix}.${name}`,
    ips,
    dir: nd,
    stateDir: join(nd, 'state'),
    socket: join(nd, 'agent.sock'),
    binDir: join(nd, 'bin'),
    confDir: join(nd, 'net.d'),
    cacheDir: join(nd, 'cache'),
    log: join(nd, 'agent.log'),
  };
}

/** A node joins a running lab; returns it once its agent answers (not yet converged). */
export async function labNodeAdd(name: string, cliEntry: string): Promise<LabNode> {
  return labLock(name).run(async () => {
    const state = loadLab(name);
    const index = state.nextNodeIndex ?? Math.max(0, ...state.nodes.map((n) => Number(n.name.replace('node-', '')))) + 1;
    state.nextNodeIndex = index + 1;
    const ips = await createNodeNetns(state.switchNetns, `${state.prefix}.node-${index}`, index);
    const node = newNode(state, index, ips);
    mkdirSync(node.dir, { recursive: true });
    await install({ binDir: node.binDir, confDir: node.confDir, socket: node.socket, name: `${state.prefix}-net`, chain: [] });
    state.nodes.push(node);
    await startNodeAgent(state, node, cliEntry);
    saveLab(state);
    return node;
  });
}

/** A node leaves: its pods go, its agent stops (and deregisters), its netns is removed. */
export async function labNodeRemove(name: string, nodeName: string): Promise<void> {
  await labLock(name).run(async () => {
    const state = loadLab(name);
    const node = state.nodes.find((n) => n.name === nodeName);
    if (!node) throw new UserError(`no node ${nodeName} in lab ${name}`);
    for (const p of state.pods.filter((x) => x.node === nodeName)) {
      if (p.serverPid) await endProcess(p.serverPid, 2000);
      await deleteNamedNetns(p.netns).catch(() => undefined);
      await withLabStore(state, (s) => s.delete('Pod', p.name, p.namespace)).catch(() => false);
    }
    state.pods = state.pods.filter((x) => x.node !== nodeName);
    if (node.agentPid) await endProcess(node.agentPid, 10_000);
    // What else runs in the node (a wireguard-go whose agent crashed) would keep its netns alive.
    await Promise.all((await netnsPids(node.netns).catch(() => [] as number[])).map((p) => endProcess(p, 3000)));
    // A running agent deregisters as it leaves; one that crashed cannot: the lab does it for it.
    await withLabStore(state, (s) => leaveCluster(s, nodeName));
    // On Kubernetes the Node is not Weft's: a machine taken out is deleted by the cluster (here, the lab).
    if (state.datastore.kind === 'kubernetes') await withLabStore(state, (s) => s.delete('Node', nodeName));
    // The switch port first: a deleted netns takes its veths down asynchronously.
    await ipBatch([ipc`link del n${node.name.replace('node-', '')}`], { netns: `/run/netns/${state.switchNetns}` }).catch(() => undefined);
    await deleteNamedNetns(node.netns);
    state.nodes = state.nodes.filter((n) => n !== node);
    saveLab(state);
  });
}

/**
 * A node's agent started again — or for the first time since it stopped — as a supervisor does:
 * a running one is ended with SIGKILL, never SIGTERM, on which a lab agent leaves the cluster
 * (the agent is built to be killed anywhere: the new one adopts the kernel state and rewrites
 * only what drifted — a policy table changed behind its back, missing routes). Returns whether
 * an agent was running.
 */
export async function labNodeRestart(name: string, nodeName: string, cliEntry: string): Promise<{ wasRunning: boolean }> {
  return labLock(name).run(async () => {
    const state = loadLab(name);
    const node = state.nodes.find((n) => n.name === nodeName);
    if (!node) throw new UserError(`no node ${nodeName} in lab ${name} (nodes: ${state.nodes.map((n) => n.name).join(', ')})`);
    // The agent's own pid file (pid and start time) names it: a pid since reused by another
    // process is not the agent's, and is never killed.
    const pid = pidFileHolder(existsSync(join(node.stateDir, 'agent.pid')) ? readFileSync(join(node.stateDir, 'agent.pid'), 'utf8') : '');
    const wasRunning = pid !== undefined && pid === node.agentPid;
    if (wasRunning) {
      process.kill(pid as number, 'SIGKILL');
      await endProcess(pid as number, 5000);
    }
    await startNodeAgent(state, node, cliEntry);
    saveLab(state);
    return { wasRunning };
  });
}

/** A lab node's agent makes and publishes a new WireGuard key pair; returns its public key. */
export async function labNodeRotateKey(name: string, nodeName: string, force = false): Promise<string> {
  const state = loadLab(name);
  const node = state.nodes.find((n) => n.name === nodeName);
  if (!node) throw new UserError(`no node ${nodeName} in lab ${name} (nodes: ${state.nodes.map((n) => n.name).join(', ')})`);
  if (!state.encryption) throw new UserError(`lab ${name} does not encrypt: start it with --encryption wireguard`);
  const r = await rotateKey(node.socket, { force }).catch((err: Error) => {
    throw new UserError(`the agent of ${nodeName} does not answer: ${err.message}`);
  });
  if (!r.ok) throw new UserError(`${nodeName} did not rotate its key: ${r.error}`);
  return r.publicKey;
}

/** Stops the lab's etcd (a datastore outage, on purpose). */
export async function labDatastoreStop(name: string): Promise<void> {
  await labLock(name).run(async () => {
    const state = loadLab(name);
    if (state.datastore.kind !== 'etcd') throw new UserError(`lab ${name} uses the ${state.datastore.kind} datastore, which cannot be stopped (only etcd can: the file store has no process, the Kubernetes stand-in keeps its objects in memory)`);
    if (state.datastore.pid) await endProcess(state.datastore.pid, 5000);
    delete state.datastore.pid;
    saveLab(state);
  });
}

/** Starts the lab's etcd again, on the same data and socket. */
export async function labDatastoreStart(name: string): Promise<void> {
  await labLock(name).run(async () => {
    const state = loadLab(name);
    if (state.datastore.kind !== 'etcd') throw new UserError(`lab ${name} uses the ${state.datastore.kind} datastore, which is not stopped and started (only etcd is)`);
    if (state.datastore.pid) throw new UserError(`the etcd of lab ${name} is running already`);
    rmSync(join(state.dir, 'etcd.sock:2379'), { force: true });
    state.datastore.pid = await startEtcd(state);
    saveLab(state);
    await waitForStore(state);
  });
}

export async function labDown(name: string): Promise<{ namespaces: number; processes: number }> {
  validateLabName(name);
  const dir = labDir(name);
  let state: LabState | undefined;
  try {
    state = loadLab(name);
  } catch {
    state = undefined;
  }
  if (state) {
    // Agents before the datastore: a leaving agent deregisters through it.
    const first = [...state.pods.map((p) => p.serverPid), state.external.serverPid, ...state.nodes.map((n) => n.agentPid)];
    await Promise.all(first.filter((p): p is number => p !== undefined).map((p) => endProcess(p, 3000)));
    if (state.datastore.kind !== 'file' && state.datastore.pid) await endProcess(state.datastore.pid, 3000);
  }
  const res = await destroyNamespaces(labPrefix(name));
  rmSync(dir, { recursive: true, force: true });
  // wireguard-go's socket directory, which an encrypted lab's nodes made: removed only when empty
  // (then nothing serves from it; a wireguard-go starting makes it again).
  try {
    rmdirSync(UAPI_DIR);
  } catch {
    /* in use, or not there */
  }
  return res;
}

export interface LabNodeStatus {
  name: string;
  netns: string;
  ips: string[];
  /** Whether its agent answers on its socket. */
  agent: 'running' | 'down';
  /** When its agent last renewed its lease, and how long ago (from the datastore). */
  agentLastSeen?: string;
  agentSilentSeconds?: number;
  blocks: string[];
  peers: string[];
  problems: string[];
  /** Objects in the datastore this node's agent leaves out because they are not usable. */
  rejected: string[];
  datastoreConnected: boolean;
  mtu?: number;
  /** Where the lab encrypts: the node's WireGuard data plane, key and peers. */
  encryption?: NonNullable<ClusterStatus['encryption']>;
  /**
   * Where Prometheus scrapes the node's agent: a URL inside the node's network namespace
   * (`ip netns exec NETNS curl URL`); the agent socket answers GET /metrics too.
   */
  metrics?: { url: string; netns: string; socket: string };
  /** Flow recording on the node: records held, capacity, losses. */
  flows?: HealthReply['flows'];
}

export interface LabStatus {
  name: string;
  backend: BackendType;
  encryption: 'none' | 'wireguard';
  datastore: string;
  nodes: LabNodeStatus[];
  namespaces: Array<{ name: string; labels: Record<string, string> }>;
  pods: Array<{ namespace: string; name: string; node: string; labels: Record<string, string>; ports: Array<{ name?: string; port: number; protocol: string }>; addresses: string[] }>;
  external: { netns: string; ips: string[] };
}

export async function labStatus(name: string): Promise<LabStatus> {
  const state = loadLab(name);
  const fromStore = await withLabStore(state, async (store) => ({
    namespaces: (await store.list<NamespaceObject>('Namespace')).items.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} })),
    leases: new Map((await store.list<LeaseObject>('Lease', SYSTEM_NAMESPACE)).items.map((l) => [l.metadata.name, l])),
  })).catch(() => ({ namespaces: [], leases: new Map<string, LeaseObject>() }));
  const now = Date.now();
  const nodes = await Promise.all(
    state.nodes.map(async (n): Promise<LabNodeStatus> => {
      const h = await getHealth(n.socket, 2000).catch(() => undefined);
      const renewed = fromStore.leases.get(n.name)?.spec?.renewTime;
      const seen = renewed ? Date.parse(renewed) : Number.NaN;
      return {
        name: n.name,
        netns: n.netns,
        ips: n.ips,
        agent: h ? 'running' : 'down',
        ...(renewed && !Number.isNaN(seen) ? { agentLastSeen: renewed, agentSilentSeconds: Math.max(0, Math.round((now - seen) / 1000)) } : {}),
        blocks: h?.cluster?.blocks ?? [],
        peers: h?.cluster?.peers ?? [],
        problems: h?.cluster?.problems ?? [],
        rejected: h?.rejected ?? [],
        datastoreConnected: h?.cluster?.datastoreConnected ?? false,
        ...(h ? { mtu: h.mtu } : {}),
        ...(h?.cluster?.encryption ? { encryption: h.cluster.encryption } : {}),
        ...(h?.metrics?.url ? { metrics: { url: h.metrics.url, netns: n.netns, socket: n.socket } } : {}),
        ...(h?.flows ? { flows: h.flows } : {}),
      };
    }),
  );
  const namespaces = fromStore.namespaces;
  return {
    name: state.name,
    backend: state.backend,
    encryption: state.encryption ?? 'none',
    datastore: state.datastore.kind,
    nodes,
    namespaces,
    pods: state.pods.map((p) => ({ namespace: p.namespace, name: p.name, node: p.node, labels: p.labels, ports: p.ports, addresses: p.addresses })),
    external: { netns: state.external.netns, ips: state.external.ips },
  };
}

export { listLabs };
