/**
 * `weft doctor`'s observations: for one node, what its agent says (health, and what it expects
 * the kernel to hold) and what its kernel and CNI directories hold — read through the kernel
 * wrappers, inside the node's netns for a lab node. A node whose agent is down still gets every
 * reading that does not need it. Also the targets: this machine, or every node of a lab.
 */
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { HealthReply } from '../agent/api.js';
import type { DoctorView } from '../agent/doctor-view.js';
import { getDoctorView, getHealth } from '../agent/health-client.js';
import { CONFLIST_FILE, PLUGIN_FILE } from '../install/install.js';
import { fdbShow } from '../kernel/bridge.js';
import { ip, ipc, ipJsonBatch } from '../kernel/ip.js';
import { nftListChain, nftListSet, nftListTables } from '../kernel/nft.js';
import { readSysctl, readSysctlIn } from '../kernel/sysctl.js';
import { wgShow } from '../kernel/wireguard.js';
import { allowChain, generationInForce, POLICY_TABLE, VERSION_SET, versionInForce } from '../policy/compile.js';
import { snapshotFingerprint } from '../policy/from-objects.js';
import { readSnapshot } from '../policy/load.js';
import { withLabStore } from '../lab/lab.js';
import { loadLab } from '../lab/lab-state.js';
import type { ClusterFacts, FileObservation, KernelObservation, NodeObservation, NodeTarget } from './judge.js';

type Json = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function netnsPath(t: NodeTarget): string | undefined {
  return t.netns ? `/run/netns/${t.netns}` : undefined;
}

async function observeKernel(t: NodeTarget, device: { vxlan?: string; wireguard?: string }, policy: boolean): Promise<KernelObservation> {
  const netns = netnsPath(t);
  const errors: string[] = [];
  const k: KernelObservation = { forwarding: {}, links: [], routes: [], neighbours: [], tables: [], errors };
  const opts = netns ? { netns } : {};
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  await attempt('forwarding', async () => {
    const read = (key: string): Promise<string> => (netns ? readSysctlIn(netns, key) : readSysctl(key));
    k.forwarding[4] = await read('net.ipv4.ip_forward');
    k.forwarding[6] = await read('net.ipv6.conf.all.forwarding').catch(() => undefined);
  });
  await attempt('links, routes and neighbours', async () => {
    const [links, v4, neigh] = await ipJsonBatch([ipc`link show`, ipc`route show proto 77`, ipc`neigh show nud permanent`], { ...opts, details: true });
    const v6 = JSON.parse((await ip(['-6', '-json', 'route', 'show', 'proto', '77'], opts)) || '[]') as Json[];
    k.links = (links as Json[]).map((l) => ({
      name: str(l['ifname']) ?? '',
      mtu: typeof l['mtu'] === 'number' ? l['mtu'] : 0,
      up: Array.isArray(l['flags']) && (l['flags'] as unknown[]).includes('UP'),
      kind: str((l['linkinfo'] as Json | undefined)?.['info_kind']),
    }));
    k.routes = [...(v4 as Json[]), ...v6].map((r) => ({ dst: str(r['dst']) ?? '', gateway: str(r['gateway']), dev: str(r['dev']), type: str(r['type']) ?? 'unicast' }));
    k.neighbours = (neigh as Json[]).flatMap((n) => (str(n['lladdr']) ? [{ dst: str(n['dst']) ?? '', dev: str(n['dev']) ?? '', lladdr: str(n['lladdr']) ?? '' }] : []));
  });
  if (device.vxlan && k.links.some((l) => l.name === device.vxlan)) await attempt('VXLAN FDB', async () => void (k.fdb = await fdbShow(device.vxlan as string, netns)));
  if (device.wireguard) await attempt('WireGuard device', async () => void (k.wireguard = (await wgShow(device.wireguard as string, netns)) ?? null));
  await attempt('nftables', async () => {
    k.tables = await nftListTables(netns);
    if (policy && k.tables.some((x) => x.family === 'inet' && x.name === POLICY_TABLE)) {
      const chain = await nftListChain('inet', POLICY_TABLE, allowChain('ingress'), netns);
      const set = await nftListSet('inet', POLICY_TABLE, VERSION_SET, netns);
      k.policyTable = { generation: chain ? generationInForce(chain) : undefined, version: set ? versionInForce(set) : undefined };
    }
  });
  return k;
}

async function observeFiles(t: NodeTarget): Promise<FileObservation> {
  const conflistPath = join(t.confDir, CONFLIST_FILE);
  const pluginPath = join(t.binDir, PLUGIN_FILE);
  const conflist = await fs.readFile(conflistPath, 'utf8').then(
    (text) => ({ text }),
    (err: NodeJS.ErrnoException) => ({ error: err.code === 'ENOENT' ? 'missing' : err.message }),
  );
  // libcni sorts the conf dir's *.conf, *.conflist and *.json by name and takes the first.
  const names = await fs.readdir(t.confDir).catch(() => [] as string[]);
  const earlier = names
    .filter((n) => /\.(conflist|conf|json)$/.test(n) && n < CONFLIST_FILE)
    .sort()
    .map((n) => join(t.confDir, n));
  const plugin = await fs.access(pluginPath, constants.X_OK).then(
    () => 'ok' as const,
    () => fs.access(pluginPath).then(() => 'not-executable' as const, () => 'missing' as const),
  );
  return { conflistPath, conflist, earlier, pluginPath, plugin };
}

/** Everything doctor reads of one node. `lab`: the node belongs to a lab (which always enforces policy). */
export async function observeNode(t: NodeTarget): Promise<NodeObservation> {
  const now = Date.now();
  let health: HealthReply | undefined;
  let agentError: string | undefined;
  let view: DoctorView | undefined;
  try {
    health = await getHealth(t.socket, 3000);
    const v = await getDoctorView(t.socket, 5000).catch(() => undefined);
    // An older agent answers 404 with a CNI error object: no view then.
    if (v && typeof v.now === 'string' && Array.isArray(v.attachments)) view = v;
  } catch (err) {
    agentError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  const expectPolicy = health ? health.policy !== undefined : t.lab !== undefined;
  const c = view?.cluster;
  const lab = t.lab ? loadLab(t.lab) : undefined;
  const device = {
    ...(c?.transport === 'vxlan' && c.device ? { vxlan: c.device } : !c && lab?.backend === 'vxlan' && !lab.encryption ? { vxlan: 'weft.vxlan' } : {}),
    ...(c?.transport === 'wireguard' && c.device ? { wireguard: c.device } : {}),
  };
  const kernel = await observeKernel(t, device, expectPolicy);
  // A policy sync between reading the view and the kernel would look like a table changed behind
  // the agent's back: the view is read once more, and the kernel is judged against the newer one.
  const want = view?.policyInForce;
  if (want && kernel.policyTable && (want.generation !== kernel.policyTable.generation || want.version !== kernel.policyTable.version)) {
    const again = await getDoctorView(t.socket, 5000).catch(() => undefined);
    if (again && typeof again.now === 'string' && Array.isArray(again.attachments)) view = again;
  }
  const files = await observeFiles(t);
  return { target: t, ...(health ? { health } : {}), ...(agentError ? { agentError } : {}), ...(view ? { view } : {}), kernel, files, now, expectPolicy };
}

/** Every node of a lab, as doctor reaches it: its netns, socket and CNI directories. */
export function labTargets(labName: string): NodeTarget[] {
  const state = loadLab(labName);
  return state.nodes.map((n) => ({ node: n.name, netns: n.netns, lab: state.name, socket: n.socket, confDir: n.confDir, binDir: n.binDir, networkName: `${state.prefix}-net` }));
}

/** What the lab's datastore says: its policy fingerprint (what every agent should report) and its nodes. */
export async function labFacts(labName: string): Promise<ClusterFacts> {
  const state = loadLab(labName);
  const nodes = state.nodes.map((n) => n.name);
  const fingerprint = await withLabStore(state, async (store) => snapshotFingerprint((await readSnapshot(store)).snapshot)).catch(() => undefined);
  return { nodes, ...(fingerprint !== undefined ? { policyFingerprint: fingerprint } : {}) };
}
