import { createHash } from 'node:crypto';
import { parseCidrMasked } from '../ipam/cidr.js';
import type { NftChain, NftSet, NftTable } from '../nftables/ruleset.js';
import { nftAddr, nftCidr, nftComment, nftHex32, nftIfname, nftLogPrefix, nftPort } from '../nftables/tokens.js';
import type { ClusterPolicy, Endpoint, Peer, Policy, PortMatch, Protocol, Snapshot } from './ir.js';
import { endpointKey, orderedClusterPolicies } from './ir.js';
import { clusterPolicySelects, policySelects } from './evaluate.js';
import { describePeer, inScope, matches, peerKey } from './selector.js';

/**
 * The nftables compiler (pure): a node's table from the same IR the evaluator reads.
 *
 * Dispatch is by (interface, address) through verdict maps — the interface in the key means
 * a pod cannot borrow another's identity by spoofing its address, and an entry left by a
 * deleted pod never matches the next pod given that address. Each local pod that policy
 * touches gets its own chains, which jump to one chain per policy; peers become named sets
 * shared by every rule with the same selector, so a pod joining a selector is one element.
 * The table grows with policies + endpoints, not with their product.
 *
 *   forward  ─ egress_fwd (prio 0):  replies → accept; jump egress
 *            ─ ingress_fwd (prio 10): replies → accept; oif.daddr vmap @ep_in  → e_/n_ chains
 *   input    ─ egress_input (prio 0): replies, IPv6 ND → accept; jump egress
 *   egress:  iif.saddr vmap @ep_out → e_/n_ chains; a local-block address not in the map → drop
 *   (ingress_fwd and egress first accept connections this generation already allowed;
 *    allowing rules goto allow_in/allow_out, which mark the connection and accept)
 *
 * Replies (conntrack's reply direction, and related ICMP errors) always pass. A connection's
 * opening direction is judged by the table in force, not only at its first packet: what a rule
 * allowed is remembered in the ct mark with the table's generation (see MARK), so while the
 * table is unchanged later packets pass on one comparison, and after any change that may deny
 * (needsNewGeneration) the next packet is judged by the new rules — a policy that now denies
 * an open connection stops it.
 * A pod that no policy isolates is one map lookup away from the allow chain, like any allowed
 * connection: its later packets pass on the cached verdict.
 *
 * A pod's chains: e_<if>_<dir> runs the WeftClusterPolicies selecting it in order (Allow →
 * accept, Deny → drop, Pass → goto the NetworkPolicy stage through the np_ maps), then
 * n_<if>_<dir> jumps to each isolating NetworkPolicy's chain and drops what none accepts.
 * Traffic the node itself sends (kubelet probes) passes no hook here and stays allowed.
 */
export const POLICY_TABLE = 'weft_policy';

export type Family = 4 | 6;
type Dir = 'ingress' | 'egress';
const SUFFIX: Record<Dir, string> = { ingress: 'i', egress: 'o' };

/** A pod interface on this node. `endpoint` is "ns/name" when it is a selectable pod. */
export interface LocalAttachment {
  hostIf: string;
  addresses: string[];
  endpoint?: string;
}

export interface CompileInput {
  snapshot: Snapshot;
  /** This node's pod ranges: an address in them with no map entry is dropped (no window at ADD). */
  localBlocks: string[];
  /** 1-65535, different for every table applied: see MARK. */
  generation?: number;
  /** The versions since the last new generation, the last the table's own: see VERSION_SET. */
  versions?: number[];
  attachments: LocalAttachment[];
  /** What the previous compile left: sets over unchanged endpoints are taken from it. */
  cache?: CompileCache;
  /** Flow recording: drops and new connections are sent to NFLOG (see FLOW_GROUPS). */
  flows?: boolean;
}

/**
 * What one compile leaves for the next, owned by the caller (the agent's policy controller):
 * a set whose namespaces' endpoints are all unchanged is taken as it was, not rebuilt — after a
 * pod change only the sets over that pod's namespace are. Pure: the same table either way.
 */
export class CompileCache {
  /** The previous compile's endpoints of each namespace: the same array while they are unchanged. */
  namespaces = new Map<string, Endpoint[]>();
  /** Each set of the previous compile with the namespace arrays its elements came from. */
  sets = new Map<string, { from: Endpoint[][]; set: NftSet }>();
}

const sameList = <T>(a: readonly T[], b: readonly T[], eq: (x: T, y: T) => boolean = (x, y) => x === y): boolean => a.length === b.length && a.every((x, i) => eq(x, b[i] as T));
const sameLabels = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
};
/** Equal in everything a set's elements read. */
const sameEndpoint = (a: Endpoint, b: Endpoint): boolean =>
  a.namespace === b.namespace &&
  a.name === b.name &&
  a.node === b.node &&
  sameLabels(a.labels, b.labels) &&
  sameList(a.addresses, b.addresses) &&
  sameList(a.ports, b.ports, (x, y) => x.name === y.name && x.protocol === y.protocol && x.port === y.port);

const fam = (a: string): Family => (a.includes(':') ? 6 : 4);
const ipKw = (f: Family): string => (f === 4 ? 'ip' : 'ip6');
const addrType = (f: Family): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
const hashes = new Map<string, string>();
/** Memoized: every sync names the same chains and sets again. */
const hash = (s: string): string => {
  let h = hashes.get(s);
  if (h === undefined) {
    h = createHash('sha256').update(s).digest('hex').slice(0, 10);
    if (hashes.size >= 100_000) hashes.clear();
    hashes.set(s, h);
  }
  return h;
};

export const policyChain = (p: Pick<Policy, 'namespace' | 'name'>, d: Dir): string => `p_${hash(`${p.namespace}/${p.name}`)}_${SUFFIX[d]}`;
export const clusterChain = (c: Pick<ClusterPolicy, 'name'>, d: Dir): string => `c_${hash(c.name)}_${SUFFIX[d]}`;
export const endpointChain = (hostIf: string, d: Dir): string => `e_${hostIf}_${SUFFIX[d]}`;
export const npChain = (hostIf: string, d: Dir): string => `n_${hostIf}_${SUFFIX[d]}`;
/** Peers live in memoized policies: each is named once. */
const peerSetNames = new WeakMap<Peer, string>();
const peerSet = (peer: Peer, f: Family): string => {
  let base = peerSetNames.get(peer);
  if (base === undefined) peerSetNames.set(peer, (base = `s_${hash(peerKey(peer))}`));
  return `${base}_${f}`;
};
const namedPortSet = (name: string, proto: Protocol, f: Family): string => `np_${name}_${proto.toLowerCase()}_${f}`;
const mapName = (stage: 'ep' | 'np', d: Dir, f: Family): string => `${stage}_${d === 'ingress' ? 'in' : 'out'}${f}`;

/** Excepts nested in other excepts are redundant, and nft refuses overlapping intervals. */
function outermost(cidrs: string[]): string[] {
  const parsed = [...new Set(cidrs)].map((c) => parseCidrMasked(c));
  return parsed
    .filter((c) => !parsed.some((o) => o !== c && o.family === c.family && o.prefix < c.prefix && (c.network >> BigInt((c.family === 4 ? 32 : 128) - o.prefix)) === (o.network >> BigInt((o.family === 4 ? 32 : 128) - o.prefix))))
    .map((c) => c.text);
}

/** Port ranges, overlapping or adjacent ones merged (nft refuses overlapping intervals in a set). */
export function mergeRanges(list: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...list].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

const rangeText = ([lo, hi]: [number, number]): string => nftPort(lo, hi);

/** A set a chain's rules name: replayed when the chain's text comes from the memo. */
type SetUse = { kind: 'peer'; peer: Extract<Peer, { kind: 'pods' }>; f: Family } | { kind: 'named'; name: string; proto: Protocol; f: Family } | { kind: 'fixed'; set: NftSet };

/**
 * A policy's chain text, by the Policy object (never changed once built; from-objects.ts
 * converts each datastore object once): only the elements of the sets it names depend on the
 * endpoints, so a sync after a pod change rebuilds sets, not 1000 policies' rules.
 */
const chainMemo = new WeakMap<Policy | ClusterPolicy, Map<string, { rules: string[]; uses: SetUse[] }>>();

const tokensOf = (e: Endpoint, f: Family): string[] => e.addresses.filter((a) => fam(a) === f).map(nftAddr);

/**
 * A set's elements from one namespace's endpoints, by that namespace's array (kept while its
 * endpoints are unchanged, see CompileCache) and the set's name: after a pod change only its
 * namespace's share of each set is recomputed.
 */
const chunks = new WeakMap<readonly Endpoint[], Map<string, string[]>>();
function chunkOf(eps: readonly Endpoint[], set: string, make: (eps: readonly Endpoint[]) => string[]): string[] {
  let bySet = chunks.get(eps);
  if (!bySet) chunks.set(eps, (bySet = new Map()));
  let c = bySet.get(set);
  if (!c) bySet.set(set, (c = make(eps)));
  return c;
}

/** A set's elements, frozen: a reused list is checked once (ruleset.ts) and never changes. */
const frozenElements = (parts: string[][]): string[] => Object.freeze([...new Set(parts.flat())]) as string[];

class Builder {
  readonly sets = new Map<string, NftSet>();
  readonly chains = new Map<string, NftChain>();
  private recording: SetUse[] | undefined;
  /** Endpoints by namespace: a peer looks only in the namespaces its scope admits. */
  private readonly byNamespace = new Map<string, Endpoint[]>();

  private readonly cache: CompileCache | undefined;
  private readonly prevSets: CompileCache['sets'];

  constructor(
    readonly s: Snapshot,
    readonly families: Family[],
    cache?: CompileCache,
  ) {
    this.cache = cache;
    this.prevSets = cache?.sets ?? new Map();
    for (const e of s.endpoints) {
      const list = this.byNamespace.get(e.namespace);
      if (list) list.push(e);
      else this.byNamespace.set(e.namespace, [e]);
    }
    // A namespace whose endpoints are all as before keeps its previous array: sets over it are reused.
    for (const [ns, list] of this.byNamespace) {
      const prev = cache?.namespaces.get(ns);
      if (prev && sameList(prev, list, sameEndpoint)) this.byNamespace.set(ns, prev);
    }
    if (cache) {
      cache.namespaces = this.byNamespace;
      cache.sets = new Map();
    }
  }

  /** A set over some namespaces' endpoints: the previous compile's when those are unchanged. */
  private endpointSet(name: string, from: Endpoint[][], make: () => NftSet): void {
    const prev = this.prevSets.get(name);
    const set = prev && sameList(prev.from, from) ? prev.set : make();
    this.sets.set(name, set);
    this.cache?.sets.set(name, { from, set });
  }

  /** The named set of a pod peer's addresses, made on first use. */
  peerSetFor(peer: Extract<Peer, { kind: 'pods' }>, f: Family): string {
    this.recording?.push({ kind: 'peer', peer, f });
    const name = peerSet(peer, f);
    if (!this.sets.has(name)) {
      const from = [...this.byNamespace].filter(([ns]) => inScope(this.s, peer.namespaces, ns)).map(([, eps]) => eps);
      this.endpointSet(name, from, () => {
        const part = (eps: readonly Endpoint[]): string[] => eps.flatMap((e) => (matches(peer.pods, e.labels) ? tokensOf(e, f) : []));
        return { name, kind: 'set', spec: `type ${addrType(f)}; ${nftComment(describePeer(peer))};`, elements: frozenElements(from.map((eps) => chunkOf(eps, name, part))) };
      });
    }
    return name;
  }

  private fixed(set: NftSet): string {
    this.recording?.push({ kind: 'fixed', set });
    if (!this.sets.has(set.name)) this.sets.set(set.name, set);
    return set.name;
  }

  /** The chain text of a policy from the memo, or built while recording the sets it names. */
  private memoChain(owner: Policy | ClusterPolicy, d: Dir, build: () => string[]): string[] {
    const key = `${d}|${this.families.join(',')}`;
    let byKey = chainMemo.get(owner);
    const hit = byKey?.get(key);
    if (hit) {
      for (const u of hit.uses) {
        if (u.kind === 'peer') this.peerSetFor(u.peer, u.f);
        else if (u.kind === 'named') this.namedPortSetFor(u.name, u.proto, u.f);
        else this.fixed(u.set);
      }
      return hit.rules;
    }
    this.recording = [];
    try {
      const rules = Object.freeze(build()) as string[];
      if (!byKey) chainMemo.set(owner, (byKey = new Map()));
      byKey.set(key, { rules, uses: this.recording });
      return rules;
    } finally {
      this.recording = undefined;
    }
  }

  namedPortSetFor(name: string, proto: Protocol, f: Family): string {
    this.recording?.push({ kind: 'named', name, proto, f });
    const set = namedPortSet(name, proto, f);
    if (!this.sets.has(set)) {
      const from = [...this.byNamespace.values()];
      this.endpointSet(set, from, () => {
        const part = (eps: readonly Endpoint[]): string[] => eps.flatMap((e) => e.ports.filter((p) => p.name === name && p.protocol === proto).flatMap((p) => tokensOf(e, f).map((a) => `${a} . ${nftPort(p.port)}`)));
        return { name: set, kind: 'set', spec: `type ${addrType(f)} . inet_service; ${nftComment(`pods' ${proto} port named ${name}`)};`, elements: frozenElements(from.map((eps) => chunkOf(eps, set, part))) };
      });
    }
    return set;
  }

  /**
   * Lists of several ports or excepts become named sets shared by every rule with the same
   * list: the kernel gives each anonymous set (`{ 80, 443 }` in a rule) a name by scanning the
   * table's sets, so thousands of them made `nft -f` of 1000 policies take seconds.
   */
  portSetFor(ranges: Array<[number, number]>): string {
    const text = ranges.map(rangeText).join(', ');
    const name = `pt_${hash(text)}`;
    return this.fixed({ name, kind: 'set', spec: 'type inet_service; flags interval;', elements: ranges.map(rangeText) });
  }

  exceptSetFor(cidrs: string[], f: Family): string {
    const sorted = [...cidrs].sort();
    const name = `ex_${hash(sorted.join(','))}_${f}`;
    return this.fixed({ name, kind: 'set', spec: `type ${addrType(f)}; flags interval;`, elements: sorted.map(nftCidr) });
  }

  /** Conditions for "the other end is one of these peers": one per alternative, with its family. */
  peerConds(peers: Peer[] | 'any', d: Dir): Array<{ f?: Family; text: string }> {
    if (peers === 'any') return [{ text: '' }];
    const field = d === 'ingress' ? 'saddr' : 'daddr';
    const out: Array<{ f?: Family; text: string }> = [];
    for (const p of peers) {
      if (p.kind === 'ipBlock') {
        const f = fam(p.cidr);
        if (!this.families.includes(f)) continue;
        const except = outermost(p.except);
        const not = except.length === 0 ? '' : ` ${ipKw(f)} ${field} != ${except.length === 1 ? nftCidr(except[0] as string) : `@${this.exceptSetFor(except, f)}`}`;
        out.push({ f, text: `${ipKw(f)} ${field} ${nftCidr(p.cidr)}${not}` });
      } else {
        for (const f of this.families) out.push({ f, text: `${ipKw(f)} ${field} @${this.peerSetFor(p, f)}` });
      }
    }
    return out;
  }

  /** Conditions for "the destination port is one of these": numeric ones grouped by protocol. */
  portConds(ports: PortMatch[] | 'any'): Array<{ f?: Family; text: string }> {
    if (ports === 'any') return [{ text: '' }];
    const out: Array<{ f?: Family; text: string }> = [];
    const byProto = new Map<Protocol, Array<[number, number]> | 'all'>();
    for (const pm of ports) {
      if (pm.name !== undefined) {
        for (const f of this.families) out.push({ f, text: `${ipKw(f)} daddr . ${pm.protocol.toLowerCase()} dport @${this.namedPortSetFor(pm.name, pm.protocol, f)}` });
        continue;
      }
      const cur = byProto.get(pm.protocol);
      if (cur === 'all') continue;
      if (pm.port === undefined) byProto.set(pm.protocol, 'all');
        else byProto.set(pm.protocol, [...(cur ?? []), [pm.port, pm.endPort ?? pm.port]]);
    }
    for (const [proto, list] of [...byProto.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const p = proto.toLowerCase();
      if (list === 'all') {
        out.push({ text: `meta l4proto ${p}` });
        continue;
      }
      const ranges = mergeRanges(list);
      const only = ranges.length === 1 ? (ranges[0] as [number, number]) : undefined;
      out.push({ text: `${p} dport ${only ? rangeText(only) : `@${this.portSetFor(ranges)}`}` });
    }
    return out;
  }

  /** nft rules for "peer AND port → verdict": the product of the alternatives, family by family. */
  ruleLines(peers: Peer[] | 'any', ports: PortMatch[] | 'any', d: Dir, verdict: string, comment: string): string[] {
    const lines: string[] = [];
    for (const a of this.peerConds(peers, d)) {
      for (const b of this.portConds(ports)) {
        if (a.f !== undefined && b.f !== undefined && a.f !== b.f) continue;
        lines.push([a.text, b.text, verdict, nftComment(comment)].filter((x) => x !== '').join(' '));
      }
    }
    return lines;
  }

  policyChainFor(p: Policy, d: Dir): string {
    const name = policyChain(p, d);
    if (!this.chains.has(name)) {
      const rules = this.memoChain(p, d, () => (p[d] ?? []).flatMap((r) => this.ruleLines(r.peers, r.ports, d, `goto ${allowChain(d)}`, `${p.namespace}/${p.name} ${d}[${r.index}]`)));
      this.chains.set(name, { name, rules });
    }
    return name;
  }

  clusterChainFor(c: ClusterPolicy, d: Dir): string {
    const name = clusterChain(c, d);
    if (!this.chains.has(name)) {
      const rules = this.memoChain(c, d, () =>
        c[d].flatMap((r) => {
          const verdict = r.action === 'Allow' ? `goto ${allowChain(d)}` : r.action === 'Deny' ? `counter goto ${dropChain('denied', d)}` : `goto np_${d === 'ingress' ? 'in' : 'out'}`;
          return this.ruleLines(r.peers, r.ports, d, verdict, `cluster ${c.name} ${d}[${r.index}]${r.name ? ` ${r.name}` : ''} ${r.action}`);
        }),
      );
      this.chains.set(name, { name, rules });
    }
    return name;
  }
}

/**
 * The verdict cache in conntrack's mark: an allowed connection carries the generation of the
 * table that judged it, the egress one in the upper 16 bits, the ingress one in the lower
 * (on one node a packet passes both). While the table is unchanged, its later packets pass on
 * one comparison; a table that may deny more has a new generation, so the next packet of
 * every connection is judged again by the new rules. Weft owns the ct mark of the node's connections.
 */
const MARK: Record<Dir, { field: number; keep: number; shift: number }> = {
  egress: { field: 0xffff0000, keep: 0x0000ffff, shift: 16 },
  ingress: { field: 0x0000ffff, keep: 0xffff0000, shift: 0 },
};
const hex32 = (n: number): string => nftHex32(n >>> 0);
export const allowChain = (d: Dir): string => `allow_${d === 'ingress' ? 'in' : 'out'}`;
const judged = (d: Dir, gen: number): string => `ct mark and ${hex32(MARK[d].field)} == ${hex32(gen << MARK[d].shift)} accept`;
const remember = (d: Dir, gen: number): string => `ct mark set ct mark and ${hex32(MARK[d].keep)} or ${hex32(gen << MARK[d].shift)} accept`;

/**
 * The generation of a table in force, read back from its allow_in chain as `nft -j list chain`
 * shows it (the `ct mark set … | GEN` statement), or undefined when it is not there.
 */
export function generationInForce(chainJson: unknown[]): number | undefined {
  for (const item of chainJson) {
    const expr = (item as { rule?: { expr?: unknown[] } }).rule?.expr ?? [];
    for (const e of expr) {
      const value = (e as { mangle?: { value?: { '|'?: unknown[] } } }).mangle?.value?.['|']?.[1];
      if (typeof value === 'number' && Number.isInteger(value)) return value & MARK.ingress.field;
    }
  }
  return undefined;
}

/**
 * Why the policy table drops a packet: every drop goes through one chain per reason and
 * direction, so its counter is the drop count by reason (metrics) and, with flow recording,
 * its first rule sends the packet to NFLOG (a flow record; the agent finds the deciding rule).
 *   isolated: a NetworkPolicy isolates the pod and no rule allows
 *   denied:   a WeftClusterPolicy rule denies
 *   unknown:  a local pod address with no policy entry (not yet attached, or spoofed)
 */
export type DropReason = 'isolated' | 'denied' | 'unknown';
export const DROP_REASONS: readonly DropReason[] = ['isolated', 'denied', 'unknown'];
export const dropChain = (reason: DropReason, d: Dir): string => `drop_${reason}_${d === 'ingress' ? 'in' : 'out'}`;

/**
 * The NFLOG groups of flow recording (per netns; read by native/weft-nflog.c). Numbers far from
 * the low ones other tools (ulogd, tcpdump users) pick by default.
 */
export const FLOW_GROUPS = { drop: 4710, forward: 4711, kernel: 4712 } as const;
/**
 * How much of a packet NFLOG copies: a drop or a new connection needs its IP header (IPv6: 40
 * bytes, and an extension header or two) and ports; an ICMP error quotes another packet, so the
 * kernel's refusals take an ICMPv6 error's inner IPv6 header and ports too. Every byte is copied
 * to the reader and printed twice over as hex: copying less is most of a record's cost.
 */
export const FLOW_SNAPLEN = { packet: 96, icmpError: 160 } as const;
/** Log prefixes: what the agent reads back (src/observe/flow-record.ts). */
export const dropPrefix = (reason: DropReason, d: Dir): string => `weft drop ${reason} ${d}`;
export const FORWARD_PREFIX = 'weft new';
/**
 * New connections recorded per second and node, at most: each record costs the agent ~8 µs of
 * decoding plus the kernel's message, so a connection storm is sampled rather than taxed
 * (docs/benchmarks.md §9).
 */
export const NEW_CONNECTION_RECORDS_PER_SECOND = 1000;
/**
 * Where a new connection is recorded, from the allow chains: its log rule (limited), and a
 * counter of those past the limit — the new connections left unrecorded.
 */
export const RECORD_CHAIN = 'record_new';
export const UNRECORDED_CHAINS = [RECORD_CHAIN] as const;

/** Every counter of a chain, added up (`nft -j list chain`): packets. */
export function chainCounterSum(chainJson: unknown[]): number {
  let n = 0;
  for (const item of chainJson) {
    for (const e of (item as { rule?: { expr?: unknown[] } }).rule?.expr ?? []) {
      const c = (e as { counter?: { packets?: unknown } }).counter;
      if (c && typeof c.packets === 'number') n += c.packets;
    }
  }
  return n;
}

const flowLog = (group: number, prefix?: string): string => `log${prefix ? ` ${nftLogPrefix(prefix)}` : ''} group ${group} snaplen ${group === FLOW_GROUPS.kernel ? FLOW_SNAPLEN.icmpError : FLOW_SNAPLEN.packet}`;

/**
 * The drop chains, and with flow recording the chain that records new connections and the one
 * that reports the kernel's own refusals. Each report is rate-limited in the kernel, so a flood
 * costs a bounded number of messages: drops 100/s per reason and direction (a burst of 200),
 * new connections NEW_CONNECTION_RECORDS_PER_SECOND (a burst of twice that; those past it are
 * counted in RECORD_CHAIN), the kernel's ICMP errors 100/s. A dropped connection is reported
 * at each dropped packet (a retry is a record); an allowed one once per node (allowRules).
 */
function observeChains(families: Family[], flows: boolean): NftChain[] {
  const drops = DROP_REASONS.flatMap((reason) =>
    (['ingress', 'egress'] as const).map((d) => ({
      name: dropChain(reason, d),
      rules: [...(flows ? [`limit rate 100/second burst 200 packets ${flowLog(FLOW_GROUPS.drop, dropPrefix(reason, d))}`] : []), 'counter drop'],
    })),
  );
  if (!flows) return drops;
  const icmpErrors = families.map((f) =>
    f === 4
      ? `icmp type destination-unreachable ip daddr @local4 limit rate 100/second burst 200 packets ${flowLog(FLOW_GROUPS.kernel)}`
      : `icmpv6 type { destination-unreachable, packet-too-big } ip6 daddr @local6 limit rate 100/second burst 200 packets ${flowLog(FLOW_GROUPS.kernel)}`,
  );
  const rate = NEW_CONNECTION_RECORDS_PER_SECOND;
  return [
    ...drops,
    // Past the limit the log rule does not match: the counter counts what was left unrecorded.
    { name: RECORD_CHAIN, rules: [`limit rate ${rate}/second burst ${2 * rate} packets ${flowLog(FLOW_GROUPS.forward, FORWARD_PREFIX)} return`, 'counter'] },
    // The kernel refusing a local pod's packet (no route, no neighbour, too big): its ICMP error.
    // Every packet the node sends passes here (VXLAN's too): the protocol is compared first.
    { name: 'flows_output', base: 'type filter hook output priority 20; policy accept;', rules: icmpErrors },
  ];
}

/**
 * The allow chains: every connection policy lets through passes one at its first packet (later
 * packets take the verdict cache, `judged`), so that is where a new connection is recorded,
 * costing established packets nothing. A connection between two pods of this node passes both:
 * allow_out records only what leaves for elsewhere (its destination no local pod), allow_in
 * what arrives — one record per node.
 */
function allowRules(d: Dir, families: Family[], gen: number, flows: boolean): string[] {
  if (!flows) return [remember(d, gen)];
  const record = d === 'ingress' ? [`ct state new jump ${RECORD_CHAIN}`] : families.map((f) => `ct state new ${ipKw(f)} daddr != @local${f} jump ${RECORD_CHAIN}`);
  return [...record, remember(d, gen)];
}

function baseChains(families: Family[], gen: number, flows: boolean): NftChain[] {
  const ifKey = (d: Dir): string => (d === 'ingress' ? 'oifname' : 'iifname');
  const field = (d: Dir): string => (d === 'ingress' ? 'daddr' : 'saddr');
  const dispatch = (stage: 'ep' | 'np', d: Dir): string[] => families.map((f) => `${ifKey(d)} . ${ipKw(f)} ${field(d)} vmap @${mapName(stage, d, f)}`);
  const unknown = (d: Dir): string[] => families.map((f) => `${ipKw(f)} ${field(d)} @local${f} counter goto ${dropChain('unknown', d)} ${nftComment(`a local pod address without policy (not yet attached, or spoofed): ${d}`)}`);
  const replies = 'ct direction reply accept';
  const related = 'ct state related accept';
  return [
    { name: 'egress_fwd', base: 'type filter hook forward priority filter; policy accept;', rules: [replies, related, 'jump egress'] },
    { name: 'egress_input', base: 'type filter hook input priority filter; policy accept;', rules: [replies, related, ...(families.includes(6) ? ['icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept'] : []), 'jump egress'] },
    { name: 'ingress_fwd', base: 'type filter hook forward priority 10; policy accept;', rules: [replies, related, judged('ingress', gen), ...dispatch('ep', 'ingress'), ...unknown('ingress')] },
    { name: 'egress', rules: [judged('egress', gen), ...dispatch('ep', 'egress'), ...unknown('egress')] },
    // Where a WeftClusterPolicy's Pass sends a packet: the pod's NetworkPolicy stage.
    { name: 'np_in', rules: [...dispatch('np', 'ingress'), `counter goto ${dropChain('isolated', 'ingress')}`] },
    { name: 'np_out', rules: [...dispatch('np', 'egress'), `counter goto ${dropChain('isolated', 'egress')}`] },
    // Where every rule that allows goes: the connection remembers this table's verdict.
    { name: allowChain('ingress'), rules: allowRules('ingress', families, gen, flows) },
    { name: allowChain('egress'), rules: allowRules('egress', families, gen, flows) },
  ];
}

/**
 * Which table is in force, for a restarted agent: every change applied adds its version to this
 * set (a new generation starts it over), so the highest element says whether the table in force
 * is the one last saved. Versions are only ever added between generations — removing an element
 * costs the kernel as much as rewriting a chain.
 */
export const VERSION_SET = 'version';
const MAX_VERSION = 0x7fffffff;

function versionSet(versions: number[]): NftSet {
  for (const v of versions) if (!Number.isInteger(v) || v < 1 || v > MAX_VERSION) throw new RangeError(`policy table version ${v}: expected an integer 1-${MAX_VERSION}`);
  return { name: VERSION_SET, kind: 'set', spec: `type mark; ${nftComment('the versions of this table since its generation')};`, elements: versions.map(hex32) };
}

/** The same table with other versions. */
export function withVersions(table: NftTable, versions: number[]): NftTable {
  const v = versionSet(versions);
  return { ...table, sets: table.sets.map((x) => (x.name === VERSION_SET ? v : x)) };
}

/** The version in force (the highest), from `nft -j list set inet weft_policy version`. */
export function versionInForce(setJson: unknown[]): number | undefined {
  for (const item of setJson) {
    const set = (item as { set?: { name?: string; elem?: unknown[] } }).set;
    if (set?.name !== VERSION_SET) continue;
    const all = (set.elem ?? []).filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
    return all.length ? Math.max(...all) : undefined;
  }
  return undefined;
}

/**
 * Elements whose addition can only allow more: a new pod's dispatch entry, a selector's or
 * named port's new member, a version.
 */
const WIDENING = new RegExp(`^add element inet ${POLICY_TABLE} (ep_(in|out)[46]|s_[0-9a-f]+_[46]|np_[A-Za-z0-9_-]+|${VERSION_SET}) `);

/**
 * Whether a change to the table in force must start a new generation (every open connection
 * judged again). Not when it only adds — elements that can only allow more, and chains and
 * sets new in this change with their contents — and no WeftClusterPolicy is in force:
 * NetworkPolicy only allows, and a new dispatch entry is a pod whose address had none —
 * dropped until now, and every connection to it judged again at the removal that freed the
 * address, which did start a generation. Anything removed or rewritten
 * may deny what was allowed, as may a cluster policy's Deny or Pass rule whose sets grow. A new
 * generation rewrites four chains: 10-15 ms of the kernel's time in a node of a lab, against
 * ~4 ms for a few elements — most of a pod's policy wait at ADD.
 */
export function needsNewGeneration(changes: string[], s: Pick<Snapshot, 'clusterPolicies'>): boolean {
  if (s.clusterPolicies.length > 0) return true;
  // Chains and sets made in this change are reachable only through what else it adds or rewrites.
  const made = new Set(changes.flatMap((c) => MADE.exec(c)?.[2] ?? []));
  return !changes.every((c) => WIDENING.test(c) || MADE.test(c) || made.has(FILLED.exec(c)?.[1] ?? ''));
}
const MADE = new RegExp(`^add (chain|set|map) inet ${POLICY_TABLE} ([A-Za-z0-9_-]+)( \\{ [^{}]* \\})?$`);
const FILLED = new RegExp(`^add (?:rule|element) inet ${POLICY_TABLE} ([A-Za-z0-9_-]+) `);

/**
 * The same table under another generation: only the chains carrying it (the verdict cache's
 * judged/remember rules) differ, so a sync that found a change need not compile twice.
 */
export function withGeneration(table: NftTable, localBlocks: string[], generation: number): NftTable {
  const flows = table.chains.some((c) => c.name === RECORD_CHAIN);
  const base = new Map(baseChains(familiesOf(localBlocks), checkedGeneration(generation), flows).map((c) => [c.name, c]));
  return { ...table, chains: table.chains.map((c) => base.get(c.name) ?? c) };
}

const familiesOf = (localBlocks: string[]): Family[] => [...new Set(localBlocks.map(fam))].sort() as Family[];

function checkedGeneration(gen: number): number {
  if (!Number.isInteger(gen) || gen < 1 || gen > 0xffff) throw new RangeError(`policy table generation ${gen}: expected an integer 1-65535`);
  return gen;
}

export function compilePolicy(input: CompileInput): NftTable {
  const { snapshot: s } = input;
  const gen = checkedGeneration(input.generation ?? 1);
  const families = familiesOf(input.localBlocks);
  const b = new Builder(s, families, input.cache);
  const byKey = new Map(s.endpoints.map((e) => [endpointKey(e), e]));
  const clusterOrder = orderedClusterPolicies(s.clusterPolicies);
  // A NetworkPolicy selects pods of its own namespace only: each local pod looks at those.
  const policiesIn = new Map<string, Policy[]>();
  for (const p of s.policies) {
    const list = policiesIn.get(p.namespace);
    if (list) list.push(p);
    else policiesIn.set(p.namespace, [p]);
  }
  const maps = new Map<string, string[]>();
  for (const stage of ['ep', 'np'] as const) for (const d of ['ingress', 'egress'] as const) for (const f of families) maps.set(mapName(stage, d, f), []);
  const perEndpoint: NftChain[] = [];

  for (const att of [...input.attachments].sort((x, y) => (x.hostIf < y.hostIf ? -1 : 1))) {
    const ep: Endpoint | undefined = att.endpoint ? byKey.get(att.endpoint) : undefined;
    for (const d of ['ingress', 'egress'] as const) {
      const cps = ep ? clusterOrder.filter((c) => c[d].length > 0 && clusterPolicySelects(s, c, ep)) : [];
      const nps = ep ? (policiesIn.get(ep.namespace) ?? []).filter((p) => p[d] !== undefined && policySelects(p, ep)) : [];
      // Allowed for want of isolation is allowed too: through the allow chain, like any rule's.
      let npVerdict = `goto ${allowChain(d)}`;
      if (nps.length > 0) {
        const name = npChain(att.hostIf, d);
        npVerdict = `goto ${name}`;
        perEndpoint.push({
          name,
          rules: [...nps.map((p) => `jump ${b.policyChainFor(p, d)}`), `counter goto ${dropChain('isolated', d)} ${nftComment(`${ep ? endpointKey(ep) : att.hostIf} ${d}: isolated by ${nps.map((p) => `${p.namespace}/${p.name}`).join(', ')}; no rule allows`)}`],
        });
      }
      let epVerdict = npVerdict;
      if (cps.length > 0) {
        const name = endpointChain(att.hostIf, d);
        epVerdict = `goto ${name}`;
        perEndpoint.push({ name, rules: [...cps.map((c) => `jump ${b.clusterChainFor(c, d)}`), npVerdict] });
      }
      for (const a of att.addresses) {
        const f = fam(a);
        if (!families.includes(f)) continue;
        const key = `${nftIfname(att.hostIf)} . ${nftAddr(a)}`;
        maps.get(mapName('ep', d, f))?.push(`${key} : ${epVerdict}`);
        if (cps.length > 0) maps.get(mapName('np', d, f))?.push(`${key} : ${npVerdict}`);
      }
    }
  }

  const sets: NftSet[] = [];
  for (const f of families) {
    sets.push({ name: `local${f}`, kind: 'set', spec: `type ${addrType(f)}; flags interval; ${nftComment("this node's pod ranges")};`, elements: input.localBlocks.filter((c) => fam(c) === f).sort().map(nftCidr) });
  }
  for (const [name, elements] of maps) {
    const f = Number(name.slice(-1)) as Family;
    sets.push({ name, kind: 'map', spec: `type ifname . ${addrType(f)} : verdict;`, elements: elements.sort() });
  }
  sets.push(versionSet(input.versions ?? [1]));
  sets.push(...[...b.sets.values()].sort((x, y) => (x.name < y.name ? -1 : 1)));
  const chains = [...baseChains(families, gen, input.flows === true), ...observeChains(families, input.flows === true), ...perEndpoint, ...[...b.chains.values()].sort((x, y) => (x.name < y.name ? -1 : 1))];
  return { family: 'inet', name: POLICY_TABLE, sets, chains };
}
