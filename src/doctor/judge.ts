/**
 * `weft doctor`'s judgement (pure): what one node's agent and kernel were seen to hold in, findings
 * out — for each check, pass, fail or skip, and for each thing wrong what it is, why it matters
 * and the command that fixes it. Gathering the observations is observe.ts's job.
 */
import type { HealthReply } from '../agent/api.js';
import type { DoctorView } from '../agent/doctor-view.js';
import { hostGwDesired } from '../datapath/host-gw.js';
import { isHostIfName } from '../datapath/names.js';
import { VXLAN_OVERHEAD, vxlanDesired } from '../datapath/vxlan.js';
import { PERSISTENT_KEEPALIVE, WIREGUARD_OVERHEAD, wireguardDesired } from '../datapath/wireguard.js';
import type { FdbEntry } from '../kernel/bridge.js';
import type { WgDeviceState } from '../kernel/wireguard.js';

export const CHECKS = ['agent', 'datastore', 'peer-agents', 'forwarding', 'routes', 'vxlan', 'wireguard', 'policy-table', 'policy-sync', 'masquerade', 'mtu', 'leaks', 'cni-config', 'clock'] as const;
export type CheckName = (typeof CHECKS)[number];

export interface Problem {
  what: string;
  why: string;
  fix: string;
}

export interface Finding {
  check: CheckName;
  node: string;
  result: 'pass' | 'fail' | 'skip';
  /** What was found fine, or why the check did not run. */
  note: string;
  problems: Problem[];
}

/** Where a node is and how it is reached: fix commands are written for it. */
export interface NodeTarget {
  node: string;
  /** A lab node's netns name: kernel fixes run inside it. */
  netns?: string;
  lab?: string;
  socket: string;
  confDir: string;
  binDir: string;
  /** The conflist's network name, when not the default. */
  networkName?: string;
}

export interface KernelLink {
  name: string;
  mtu: number;
  up: boolean;
  kind: string | undefined;
}

export interface KernelRoute {
  dst: string;
  gateway: string | undefined;
  dev: string | undefined;
  type: string;
}

export interface KernelObservation {
  /** Forwarding sysctl values by family (undefined: not read). */
  forwarding: { 4?: string; 6?: string };
  links: KernelLink[];
  /** Weft's routes (protocol 77), both families. */
  routes: KernelRoute[];
  /** Permanent neighbours: address, device, MAC. */
  neighbours: Array<{ dst: string; dev: string; lladdr: string }>;
  /** The VXLAN device's FDB; undefined when not read (no such device or another transport). */
  fdb?: FdbEntry[];
  /** The WireGuard device; null when it is not there, undefined when not read. */
  wireguard?: WgDeviceState | null;
  tables: Array<{ family: string; name: string }>;
  /** The policy table's generation and version in force; undefined when the table is missing. */
  policyTable?: { generation: number | undefined; version: number | undefined };
  /** What could not be read, one line each. */
  errors: string[];
}

export interface FileObservation {
  conflistPath: string;
  /** The conflist's text, or why it could not be read. */
  conflist: { text: string } | { error: string };
  /** Conflists in the same directory that sort before Weft's: a runtime takes the first. */
  earlier: string[];
  pluginPath: string;
  plugin: 'ok' | 'missing' | 'not-executable';
}

export interface NodeObservation {
  target: NodeTarget;
  health?: HealthReply;
  /** Why the agent did not answer. */
  agentError?: string;
  view?: DoctorView;
  kernel: KernelObservation;
  files: FileObservation;
  /** Doctor's clock when it asked (ms). */
  now: number;
  /** Is the node expected to enforce policy (a lab, or an agent that reports a policy status)? */
  expectPolicy: boolean;
}

/** The datastore's side, where doctor can read it (a lab). */
export interface ClusterFacts {
  /** Digest of the policy objects in the datastore: an agent in sync reports the same. */
  policyFingerprint?: string;
  /** Every node's name (a lab's). */
  nodes?: string[];
}

const TOLERATED_SKEW_MS = 2000;

/** A command run on the node: inside its netns when it is a lab node. */
function onNode(t: NodeTarget, cmd: string): string {
  return t.netns ? `ip netns exec ${t.netns} ${cmd}` : cmd;
}

/** How the node's agent is started again. */
export function restartAgent(t: NodeTarget): string {
  if (t.lab) return `weft lab node restart ${t.node} --lab ${t.lab}`;
  return `systemctl restart weft-agent (on Kubernetes: kubectl -n weft-system delete pod -l app.kubernetes.io/name=weft --field-selector spec.nodeName=${t.node}; by hand: weft agent --socket ${t.socket} …)`;
}

function finding(check: CheckName, node: string, problems: Problem[], passNote: string): Finding {
  return { check, node, result: problems.length ? 'fail' : 'pass', note: problems.length ? `${problems.length} problem${problems.length > 1 ? 's' : ''}` : passNote, problems };
}

const skip = (check: CheckName, node: string, note: string): Finding => ({ check, node, result: 'skip', note, problems: [] });

function agentCheck(o: NodeObservation): Finding {
  const t = o.target;
  if (!o.health) {
    return finding('agent', t.node, [
      {
        what: `no agent answers on ${t.socket}${o.agentError ? ` (${o.agentError})` : ''}`,
        why: 'no pod can be added or removed on this node (CNI calls fail with code 11), and nothing repairs drift in its routes or policy; what the agent made stays, so running pods keep their traffic',
        fix: restartAgent(t),
      },
    ], '');
  }
  const problems: Problem[] = [];
  if (!o.health.ok) problems.push({ what: 'the agent reports a problem', why: 'it may not serve CNI calls', fix: restartAgent(t) });
  for (const r of o.health.rejected ?? []) {
    problems.push({ what: `the datastore holds an object the agent leaves out: ${r}`, why: 'what that object asks for (a policy, a node, a block) is not in force anywhere', fix: 'correct or delete the object (weft apply -f / weft delete -f)' });
  }
  return finding('agent', t.node, problems, `answers: ${o.health.attachments} pod${o.health.attachments === 1 ? '' : 's'} attached${o.view ? '' : ' (an older agent: no /v1/doctor, kernel state not compared)'}`);
}

function datastoreCheck(o: NodeObservation): Finding {
  const t = o.target;
  const c = o.health?.cluster;
  if (!o.health) return skip('datastore', t.node, 'needs the agent');
  if (!c) return skip('datastore', t.node, 'a single node: no datastore');
  if (c.datastoreConnected) return finding('datastore', t.node, [], 'connected');
  return finding('datastore', t.node, [
    {
      what: 'the agent is not connected to its datastore',
      why: 'it sees no change to nodes, pods or policies: nodes joining are not routed, policy changes are not enforced here',
      fix: t.lab ? `weft lab datastore start --lab ${t.lab} (for an etcd lab; else see the agent's log)` : "check the datastore the agent was started with: etcd `etcdctl --endpoints URL endpoint health`, Kubernetes `kubectl get --raw /readyz`; the agent's log says why",
    },
  ], '');
}

function peerAgentsCheck(o: NodeObservation): Finding {
  const t = o.target;
  const c = o.health?.cluster;
  if (!c) return skip('peer-agents', t.node, o.health ? 'a single node' : 'needs the agent');
  const problems = c.silentAgents.map((s) => ({
    what: `the agent of ${s.node} has not renewed its lease${s.silentSeconds !== undefined ? ` for ${s.silentSeconds} s` : ''}`,
    why: `${s.node} keeps its routes, but no pod can be added or removed there and nothing repairs its kernel; after the node grace (${c.nodeGraceSeconds ? `${c.nodeGraceSeconds} s` : 'never'}) it counts as gone`,
    fix: t.lab ? `weft lab node restart ${s.node} --lab ${t.lab}` : `run weft doctor on ${s.node}`,
  }));
  return finding('peer-agents', t.node, problems, `${c.peers.length} peer${c.peers.length === 1 ? '' : 's'}, every agent renewing its lease`);
}

function forwardingCheck(o: NodeObservation): Finding {
  const t = o.target;
  // Without the agent its pools are unknown: a lab is dual-stack; elsewhere IPv4 is checked.
  const families: Array<4 | 6> = o.health ? [...new Set(o.health.pools.map((p) => p.family as 4 | 6))] : t.lab ? [4, 6] : [4];
  const key = { 4: 'net.ipv4.ip_forward', 6: 'net.ipv6.conf.all.forwarding' } as const;
  const problems: Problem[] = [];
  for (const f of families) {
    const v = o.kernel.forwarding[f];
    if (v === '1') continue;
    problems.push({
      what: v === undefined ? `${key[f]} could not be read` : `${key[f]} is ${v}`,
      why: `pods are cut off: the node drops every IPv${f} packet to or from them that is not its own (CNI STATUS answers 51)`,
      fix: onNode(t, `sysctl -w ${key[f]}=1`),
    });
  }
  return finding('forwarding', t.node, problems, `on (IPv${families.join(', IPv')})${o.health || t.lab ? '' : '; IPv6 not checked without the agent'}`);
}

/** Which route each peer block needs (pure): block -> {gateway, dev}. */
function desiredRoutes(c: NonNullable<DoctorView['cluster']>): { routes: Map<string, { peer: string; gateway?: string; dev?: string; onlink: boolean }> } {
  const routes = new Map<string, { peer: string; gateway?: string; dev?: string; onlink: boolean }>();
  const owner = new Map(c.peers.flatMap((p) => p.blocks.map((b) => [b, p.name] as const)));
  if (c.transport === 'vxlan') {
    for (const [b, gw] of vxlanDesired(c.peers).state.routes) routes.set(b, { peer: owner.get(b) ?? '?', gateway: gw, ...(c.device ? { dev: c.device } : {}), onlink: true });
  } else if (c.transport === 'host-gw') {
    for (const [b, via] of hostGwDesired(c.peers, () => undefined).state.routes) routes.set(b, { peer: owner.get(b) ?? '?', gateway: via, onlink: false });
  } else if (c.transport === 'wireguard') {
    for (const b of wireguardDesired(c.peers, c.wireguardPublicKey ?? '').state.routes) routes.set(b, { peer: owner.get(b) ?? '?', ...(c.device ? { dev: c.device } : {}), onlink: false });
  }
  return { routes };
}

function routesCheck(o: NodeObservation, facts: ClusterFacts): Finding {
  const t = o.target;
  const c = o.view?.cluster;
  if (!o.health) return skip('routes', t.node, 'needs the agent (it knows the peers and their blocks)');
  if (!o.health.cluster) return skip('routes', t.node, 'a single node: no peers');
  if (!c) return skip('routes', t.node, 'the agent does not say what it routes (an older agent)');
  const problems: Problem[] = [];
  const unreachable = (peer: string, block: string): string => `pods here cannot reach ${peer}'s pods in ${block}`;
  const { routes } = desiredRoutes(c);
  const have = o.kernel.routes.filter((r) => r.type === 'unicast');
  for (const [block, want] of routes) {
    const r = have.find((x) => x.dst === block);
    const cmd = `ip route replace ${block}${want.gateway ? ` via ${want.gateway}` : ''}${want.dev ? ` dev ${want.dev}` : ''}${want.onlink ? ' onlink' : ''} proto 77`;
    if (!r) {
      problems.push({ what: `no route to ${want.peer}'s block ${block}`, why: `${unreachable(want.peer, block)} (the agent puts it back at its next resync, within 10 s)`, fix: onNode(t, cmd) });
    } else if ((want.gateway !== undefined && r.gateway !== want.gateway) || (want.dev !== undefined && r.dev !== want.dev)) {
      problems.push({ what: `the route to ${want.peer}'s block ${block} goes via ${r.gateway ?? '-'} dev ${r.dev ?? '-'}, not via ${want.gateway ?? '-'} dev ${want.dev ?? '-'}`, why: unreachable(want.peer, block), fix: onNode(t, cmd) });
    }
  }
  for (const r of have) {
    if (routes.has(r.dst)) continue;
    problems.push({ what: `a Weft route to ${r.dst} (dev ${r.dev ?? '-'}) that no peer needs`, why: 'traffic to those addresses goes to a node that does not hold them', fix: onNode(t, `ip route del ${r.dst}${r.dev ? ` dev ${r.dev}` : ''} proto 77`) });
  }
  const peers = new Set(c.peers.map((p) => p.name));
  for (const n of facts.nodes ?? []) {
    if (n === t.node || peers.has(n)) continue;
    problems.push({ what: `${n} is not among the peers this node routes to`, why: `pods here cannot reach any pod on ${n}`, fix: `check ${n}'s Node object and the agent's problems (weft lab status${t.lab ? ` --lab ${t.lab}` : ''}); the agent's log says why` });
  }
  for (const p of o.health.cluster.problems) problems.push({ what: `the agent reports: ${p}`, why: 'a peer the agent cannot route to is unreachable from this node', fix: 'see the message; the agent log has the details' });
  return finding('routes', t.node, problems, `${routes.size} peer block${routes.size === 1 ? '' : 's'} routed (${c.peers.map((p) => p.name).join(', ') || 'no peers'})`);
}

function vxlanCheck(o: NodeObservation): Finding {
  const t = o.target;
  const c = o.view?.cluster;
  if (!c) return skip('vxlan', t.node, o.health ? 'not a cluster member, or an older agent' : 'needs the agent');
  if (c.transport !== 'vxlan') return skip('vxlan', t.node, `the ${c.transport} transport`);
  const dev = c.device ?? 'weft.vxlan';
  const link = o.kernel.links.find((l) => l.name === dev);
  if (!link || !link.up) {
    return finding('vxlan', t.node, [{ what: `the VXLAN device ${dev} is ${link ? 'down' : 'missing'}`, why: 'no pod here reaches a pod on another node', fix: link ? onNode(t, `ip link set dev ${dev} up`) : `${restartAgent(t)} (a running agent makes it again at its next resync, within 10 s)` }], '');
  }
  const { state } = vxlanDesired(c.peers);
  const problems: Problem[] = [];
  const fdb = new Map((o.kernel.fdb ?? []).filter((e) => e.permanent && e.dst && e.mac !== '00:00:00:00:00:00').map((e) => [e.mac, e.dst as string]));
  for (const [mac, dst] of state.fdb) {
    if (fdb.get(mac) === dst) continue;
    const peer = c.peers.find((p) => p.vxlanMac === mac)?.name ?? mac;
    problems.push({ what: fdb.has(mac) ? `the FDB sends ${peer}'s VTEP ${mac} to ${fdb.get(mac)}, not ${dst}` : `no FDB entry for ${peer}'s VTEP ${mac} (-> ${dst})`, why: `packets to ${peer}'s pods are not sent to ${peer}`, fix: onNode(t, `bridge fdb replace ${mac} dev ${dev} dst ${dst} self permanent`) });
  }
  for (const [mac, dst] of fdb) if (!state.fdb.has(mac)) problems.push({ what: `a stale FDB entry ${mac} -> ${dst}`, why: 'it sends pod traffic to a node that is no peer', fix: onNode(t, `bridge fdb del ${mac} dev ${dev} dst ${dst} self`) });
  const neigh = new Map(o.kernel.neighbours.filter((n) => n.dev === dev).map((n) => [n.dst, n.lladdr]));
  for (const [addr, mac] of state.neigh) {
    if (neigh.get(addr) === mac) continue;
    problems.push({ what: `no permanent neighbour ${addr} -> ${mac} on ${dev}${neigh.has(addr) ? ` (it is ${neigh.get(addr)})` : ''}`, why: `the route via ${addr} has no MAC to send to: pods of that block are unreachable`, fix: onNode(t, `ip neigh replace ${addr} lladdr ${mac} dev ${dev} nud permanent`) });
  }
  return finding('vxlan', t.node, problems, `${state.fdb.size} FDB entr${state.fdb.size === 1 ? 'y' : 'ies'}, ${state.neigh.size} neighbour${state.neigh.size === 1 ? '' : 's'}`);
}

function wireguardCheck(o: NodeObservation): Finding {
  const t = o.target;
  const c = o.view?.cluster;
  if (!c) return skip('wireguard', t.node, o.health ? 'not a cluster member, or an older agent' : 'needs the agent');
  if (c.transport !== 'wireguard') return skip('wireguard', t.node, 'the cluster does not encrypt');
  const dev = c.device ?? 'weft.wg';
  const wg = o.kernel.wireguard;
  if (!wg) return finding('wireguard', t.node, [{ what: `the WireGuard device ${dev} is missing`, why: 'no pod here reaches a pod on another node (pod traffic is never sent in clear)', fix: restartAgent(t) }], '');
  const problems: Problem[] = [];
  if (c.wireguardPublicKey && wg.publicKey !== c.wireguardPublicKey) problems.push({ what: `${dev} has public key ${wg.publicKey ?? 'none'}, not the published ${c.wireguardPublicKey}`, why: 'peers encrypt to the published key: this node cannot read what they send', fix: restartAgent(t) });
  const want = wireguardDesired(c.peers, c.wireguardPublicKey ?? '').state.peers;
  for (const p of want) {
    const h = wg.peers.find((x) => x.publicKey === p.publicKey);
    const cmd = onNode(t, `wg set ${dev} peer ${p.publicKey} endpoint ${p.endpoint} allowed-ips ${p.allowedIps.join(',')} persistent-keepalive ${PERSISTENT_KEEPALIVE}`);
    if (!h) problems.push({ what: `${p.name} is not a peer of ${dev}`, why: `pods here cannot reach ${p.name}'s pods`, fix: cmd });
    else if (h.endpoint !== p.endpoint || [...h.allowedIps].sort().join(',') !== p.allowedIps.join(',')) problems.push({ what: `peer ${p.name} has endpoint ${h.endpoint ?? '-'} and allowed IPs ${h.allowedIps.join(',') || '-'}, not ${p.endpoint} and ${p.allowedIps.join(',')}`, why: `traffic to ${p.name}'s pods is dropped or sent elsewhere`, fix: cmd });
  }
  for (const h of wg.peers) if (!want.some((p) => p.publicKey === h.publicKey)) problems.push({ what: `${dev} has a peer ${h.publicKey} no node publishes`, why: 'a stale peer may claim allowed IPs of a node that holds them now', fix: onNode(t, `wg set ${dev} peer ${h.publicKey} remove`) });
  return finding('wireguard', t.node, problems, `${want.length} peer${want.length === 1 ? '' : 's'} configured`);
}

/** The nftables listing failed (not root, no nft): a table it did not see is not a missing table. */
const nftUnread = (o: NodeObservation): boolean => o.kernel.errors.some((e) => e.startsWith('nftables:'));

function policyTableCheck(o: NodeObservation): Finding {
  const t = o.target;
  if (!o.expectPolicy) return skip('policy-table', t.node, o.health ? 'the agent enforces no policy' : 'needs the agent (whether this node enforces policy)');
  if (nftUnread(o)) return skip('policy-table', t.node, 'nftables could not be read (see the agent check)');
  const k = o.kernel.policyTable;
  const why = 'NetworkPolicy is not enforced as written on this node: isolated pods may be open, or open pods cut off';
  if (!k) {
    return finding('policy-table', t.node, [{ what: 'the policy table inet weft_policy is missing', why: `NetworkPolicy is not enforced on this node: every pod here is open to everything`, fix: `${restartAgent(t)} (a restarted agent writes it whole; a running one only at its next full rewrite, within 5 min)` }], '');
  }
  const want = o.view?.policyInForce;
  if (!want) return finding('policy-table', t.node, [], o.health ? 'present (the agent has applied none yet, or does not say which)' : 'present (not compared: the agent is down)');
  if (k.generation !== want.generation || k.version !== want.version) {
    return finding('policy-table', t.node, [{ what: `the policy table in force (generation ${k.generation ?? '?'}, version ${k.version ?? '?'}) is not the one the agent applied (generation ${want.generation}, version ${want.version}): it was changed behind the agent's back`, why, fix: `${restartAgent(t)} (a restarted agent rewrites a table it did not write)` }], '');
  }
  return finding('policy-table', t.node, [], `the agent's table is in force (generation ${want.generation}, version ${want.version})`);
}

function policySyncCheck(o: NodeObservation, facts: ClusterFacts): Finding {
  const t = o.target;
  const p = o.health?.policy;
  if (!p) return skip('policy-sync', t.node, o.health ? 'the agent enforces no policy' : 'needs the agent');
  const problems: Problem[] = [];
  if (p.error) problems.push({ what: `the last policy sync failed: ${p.error}`, why: 'policy changes since are not in force here', fix: "see the agent's log; it retries by itself" });
  if (p.syncs === 0) problems.push({ what: 'no policy table is in force yet', why: 'new pods cannot be added here until it is (their ADD waits for it)', fix: "wait for the agent's first sync; its log says what it waits for" });
  else if (facts.policyFingerprint !== undefined && p.fingerprint !== facts.policyFingerprint) {
    problems.push({ what: `the agent enforces another state of the policy objects than the datastore holds (fingerprint ${p.fingerprint ?? 'none'}, datastore ${facts.policyFingerprint})`, why: 'a policy, pod or namespace change is not in force on this node yet', fix: `wait a moment and run doctor again; if it stays, ${restartAgent(t)}` });
  }
  for (const x of p.problems) problems.push({ what: `a policy object is ignored: ${x}`, why: 'what it asks for is not enforced anywhere', fix: 'correct the object (weft apply -f)' });
  return finding('policy-sync', t.node, problems, facts.policyFingerprint !== undefined ? 'current with the datastore' : `${p.syncs} sync${p.syncs === 1 ? '' : 's'}, the last without error`);
}

function masqueradeCheck(o: NodeObservation): Finding {
  const t = o.target;
  if (!o.expectPolicy && !o.health?.cluster) return skip('masquerade', t.node, o.health ? 'a single node: no masquerade' : 'needs the agent');
  if (nftUnread(o)) return skip('masquerade', t.node, 'nftables could not be read (see the agent check)');
  if (o.kernel.tables.some((x) => x.family === 'inet' && x.name === 'weft_masq')) return finding('masquerade', t.node, [], 'inet weft_masq in force');
  return finding('masquerade', t.node, [{ what: 'the masquerade table inet weft_masq is missing', why: 'pods cannot reach anything outside the cluster: their packets leave with pod addresses no one routes back', fix: `the agent restores it within 10 s; else ${restartAgent(t)}` }], '');
}

function mtuCheck(o: NodeObservation): Finding {
  const t = o.target;
  if (!o.health) return skip('mtu', t.node, 'needs the agent (it knows the pod MTU)');
  const mtu = o.health.mtu;
  const c = o.view?.cluster;
  const problems: Problem[] = [];
  const linkOf = (name: string): KernelLink | undefined => o.kernel.links.find((l) => l.name === name);
  if (c) {
    const overhead = c.transport === 'vxlan' ? VXLAN_OVERHEAD : c.transport === 'wireguard' ? (c.uplink.ips[0]?.includes(':') ? WIREGUARD_OVERHEAD.ipv6 : WIREGUARD_OVERHEAD.ipv4) : 0;
    const up = linkOf(c.uplink.dev);
    if (up && mtu + overhead > up.mtu) {
      problems.push({ what: `pod MTU ${mtu} + ${overhead} bytes of ${c.transport} overhead exceeds the uplink ${c.uplink.dev}'s MTU ${up.mtu}`, why: 'full-size pod packets do not fit the underlay once encapsulated: large transfers between nodes stall while pings pass', fix: `${restartAgent(t)} (with --mtu auto the agent takes the uplink's MTU less the overhead: ${up.mtu - overhead})` });
    }
    const dev = c.device ? linkOf(c.device) : undefined;
    if (dev && dev.mtu !== mtu) {
      problems.push({
        what: `${dev.name} has MTU ${dev.mtu}; the pods' MTU is ${mtu}`,
        why: dev.mtu < mtu ? `pod packets over ${dev.mtu} bytes to other nodes are dropped at the tunnel: large transfers stall while pings pass` : 'the tunnel sends packets the underlay cannot carry once encapsulated',
        fix: onNode(t, `ip link set dev ${dev.name} mtu ${mtu}`),
      });
    }
  }
  let checked = 0;
  for (const a of o.view?.attachments ?? []) {
    if (a.state !== 'ready') continue;
    const l = linkOf(a.hostIf);
    if (!l) continue; // leaks says so
    checked++;
    if (l.mtu !== mtu) problems.push({ what: `pod link ${a.hostIf} (${a.addresses.join(', ')}) has MTU ${l.mtu}; the pods' MTU is ${mtu}`, why: l.mtu < mtu ? `packets over ${l.mtu} bytes to that pod are dropped` : 'the pod may receive packets larger than the path carries', fix: onNode(t, `ip link set dev ${a.hostIf} mtu ${mtu}`) });
  }
  return finding('mtu', t.node, problems, `${mtu} on the pods${c?.device ? ` and ${c.device}` : ''} (${checked} pod link${checked === 1 ? '' : 's'})${c ? `, uplink ${c.uplink.dev} ${linkOf(c.uplink.dev)?.mtu ?? '?'}` : ''}`);
}

function leaksCheck(o: NodeObservation): Finding {
  const t = o.target;
  const v = o.view;
  if (!v) return skip('leaks', t.node, 'needs the agent (its attachment records and reservations)');
  const problems: Problem[] = [];
  const hostIfs = new Set(v.attachments.map((a) => a.hostIf));
  for (const l of o.kernel.links) {
    if (isHostIfName(l.name) && !hostIfs.has(l.name)) problems.push({ what: `pod link ${l.name} belongs to no attachment`, why: 'a leaked link: its route and address may shadow a new pod given the same address', fix: onNode(t, `ip link del ${l.name}`) });
  }
  for (const a of v.attachments) {
    if (a.state === 'ready' && !o.kernel.links.some((l) => l.name === a.hostIf)) {
      problems.push({ what: `the pod of container ${a.containerId} (${a.addresses.join(', ') || 'no address'}) has no link ${a.hostIf}`, why: 'that pod has no network', fix: "delete and recreate the pod (its runtime's CNI DEL then ADD; an ADD repeated repairs it)" });
    }
  }
  const owned = new Set(v.attachments.map((a) => `${a.containerId}\u0000${a.ifName}`));
  for (const r of v.reservations) {
    if (r.containerId !== undefined && owned.has(`${r.containerId}\u0000${r.ifName ?? ''}`)) continue;
    problems.push({ what: `address ${r.address} is reserved${r.containerId ? ` for container ${r.containerId}` : ''}, which has no attachment`, why: 'a leaked address: it is never handed out again, and the range fills up', fix: `let the runtime run CNI GC (kubelet and containerd do), or by hand: weft cni gc --conf-dir ${t.confDir} --bin-dir ${t.binDir} --valid ID/IFNAME… (every attachment still in use)` });
  }
  return finding('leaks', t.node, problems, `${v.attachments.length} attachment${v.attachments.length === 1 ? '' : 's'}, ${v.reservations.length} reservation${v.reservations.length === 1 ? '' : 's'}, every pod link accounted for`);
}

function cniConfigCheck(o: NodeObservation): Finding {
  const t = o.target;
  const f = o.files;
  const fix = `weft install --cni-bin-dir ${t.binDir} --cni-conf-dir ${t.confDir} --socket ${t.socket}${t.networkName ? ` --network-name ${t.networkName}` : ''}`;
  const problems: Problem[] = [];
  if ('error' in f.conflist) problems.push({ what: `${f.conflistPath}: ${f.conflist.error}`, why: 'the runtime finds no Weft network: pods get no network', fix });
  else {
    let conf: { plugins?: Array<{ type?: unknown; socket?: unknown }> } | undefined;
    try {
      conf = JSON.parse(f.conflist.text) as typeof conf;
    } catch {
      conf = undefined;
    }
    const weft = conf?.plugins?.[0];
    if (!weft) problems.push({ what: `${f.conflistPath} is not a conflist with plugins`, why: 'the runtime cannot use it: pods get no network', fix });
    else if (weft.type !== 'weft') problems.push({ what: `${f.conflistPath}'s first plugin is ${JSON.stringify(weft.type)}, not weft`, why: 'pods are not attached by Weft', fix });
    else if ((weft.socket ?? '/run/weft/cni.sock') !== t.socket) problems.push({ what: `${f.conflistPath} names the agent socket ${JSON.stringify(weft.socket)}, not ${t.socket}`, why: 'the plugin asks another agent, or none: CNI calls fail with code 11', fix });
  }
  for (const e of f.earlier) problems.push({ what: `${e} sorts before ${f.conflistPath}`, why: "a runtime uses the first conflist of its directory: pods are attached by that network, not Weft's", fix: `move ${e} out of ${t.confDir}` });
  if (f.plugin !== 'ok') problems.push({ what: `the plugin ${f.pluginPath} is ${f.plugin === 'missing' ? 'missing' : 'not executable'}`, why: 'the runtime cannot run it: every pod ADD fails', fix });
  return finding('cni-config', t.node, problems, `${f.conflistPath} and ${f.pluginPath}`);
}

function clockCheck(o: NodeObservation): Finding {
  const t = o.target;
  const v = o.view;
  if (!v) return skip('clock', t.node, 'needs the agent');
  const problems: Problem[] = [];
  const agentNow = Date.parse(v.now);
  const why = "leases are judged by other nodes' clocks: a clock ahead keeps a dead agent looking alive, one behind makes a live agent look silent (and, past the node grace, gone)";
  if (Math.abs(agentNow - o.now) > TOLERATED_SKEW_MS) problems.push({ what: `the agent's clock is ${Math.round((agentNow - o.now) / 1000)} s off this machine's`, why, fix: 'sync the clocks: timedatectl set-ntp true (chronyc tracking shows the offset)' });
  const c = v.cluster;
  if (c) {
    const tolerance = Math.max(TOLERATED_SKEW_MS, (c.leaseDurationSeconds * 1000) / 4);
    for (const l of c.leases) {
      const at = l.renewTime ? Date.parse(l.renewTime) : Number.NaN;
      if (!Number.isNaN(at) && at - agentNow > tolerance) problems.push({ what: `${l.node} renewed its lease ${Math.round((at - agentNow) / 1000)} s in the future of this node's clock`, why, fix: `sync the clocks of ${l.node} and ${c.node}: timedatectl set-ntp true on each (chronyc tracking shows the offset)` });
    }
  }
  return finding('clock', t.node, problems, c ? `no lease renewed in the future (${c.leases.length} lease${c.leases.length === 1 ? '' : 's'})` : 'the agent agrees with this machine');
}

/** Every check of one node. */
export function judgeNode(o: NodeObservation, facts: ClusterFacts = {}): Finding[] {
  const out = [agentCheck(o), datastoreCheck(o), peerAgentsCheck(o), forwardingCheck(o), routesCheck(o, facts), vxlanCheck(o), wireguardCheck(o), policyTableCheck(o), policySyncCheck(o, facts), masqueradeCheck(o), mtuCheck(o), leaksCheck(o), cniConfigCheck(o), clockCheck(o)];
  if (o.kernel.errors.length) {
    out.push({ check: 'agent', node: o.target.node, result: 'fail', note: 'the kernel state could not all be read', problems: o.kernel.errors.map((e) => ({ what: e, why: 'the checks that need it may be wrong', fix: 'run doctor as root, with iproute2, nftables and wireguard-tools installed' })) });
  }
  return out;
}

/** Checks across nodes: one pod MTU for all (else the larger side's packets are dropped by the smaller). */
export function judgeCluster(nodes: NodeObservation[]): Finding[] {
  const mtus = nodes.flatMap((o) => (o.health ? [{ node: o.target.node, mtu: o.health.mtu, t: o.target }] : []));
  const distinct = [...new Set(mtus.map((m) => m.mtu))];
  if (distinct.length <= 1) return [];
  const low = Math.min(...distinct);
  return mtus
    .filter((m) => m.mtu !== low)
    .map((m) => ({
      check: 'mtu' as const,
      node: m.node,
      result: 'fail' as const,
      note: 'differs from other nodes',
      problems: [{ what: `pods here have MTU ${m.mtu}; on ${mtus.filter((x) => x.mtu === low).map((x) => x.node).join(', ')} ${low}`, why: `packets between ${m.mtu} and ${low} bytes from pods here to pods there are dropped: large transfers stall while pings pass`, fix: `give every node's uplink the same MTU, or every agent the same --mtu ${low}, then ${restartAgent(m.t)}` }],
    }));
}

/** Exit status: 0 only when nothing failed. */
export function exitStatus(findings: Finding[]): number {
  return findings.some((f) => f.result === 'fail') ? 1 : 0;
}
