/**
 * The behaviour every Backend must have, on the real kernel: two nodes joined by an underlay
 * link, each with one pod address per family in its own block. A backend reconciled towards its
 * peer carries pod traffic both ways in both families, converges (a second reconcile changes
 * nothing), repairs a route deleted behind its back, stops routing to a peer no longer listed,
 * and leaves nothing of its own after teardown. The test (test/backend.test.ts) gives a harness
 * that runs one backend operation in a node's netns and a command there.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { BackendPublished } from './backend.js';
import type { TransportType } from './backend-type.js';
import type { Peer } from './peer.js';

export interface ContractNode {
  name: string;
  /** Underlay addresses, IPv4 first, and the underlay link's MTU. */
  ips: string[];
  uplinkMtu: number;
  /** The node's pod blocks (IPv4, IPv6) and one address in each that answers pings. */
  blocks: string[];
  podAddresses: string[];
}

export type BackendOp = 'setup' | 'reconcile' | 'teardown';

export interface BackendOpResult {
  podMtu: number;
  problems: string[];
  changes: number;
  /** What the node publishes on its Node object (the registry's `published`). */
  published: BackendPublished;
}

/** Each transport's bytes of overhead on an IPv4 underlay: the pod MTU is the uplink's less this. */
const OVERHEAD: Readonly<Record<TransportType, number>> = { vxlan: 50, 'host-gw': 0, wireguard: 60 };

export interface BackendHarness {
  nodes: [ContractNode, ContractNode];
  /** Makes the backend of `type` for `node` (from the registry) and runs `op` in that node's netns. */
  run(node: ContractNode, op: BackendOp, peers: Peer[]): Promise<BackendOpResult>;
  /** Runs a command in the node's netns; resolves to whether it exited 0, and its stdout. */
  exec(node: ContractNode, argv: string[]): Promise<{ ok: boolean; stdout: string }>;
}


/** Declares the contract's tests for one backend (or WireGuard, which stands in for one). */
export function backendContract(type: TransportType, h: () => BackendHarness): void {
  const published = new Map<string, BackendPublished>();
  const run = async (node: ContractNode, op: BackendOp, peers: Peer[]): Promise<BackendOpResult> => {
    const r = await h().run(node, op, peers);
    published.set(node.name, r.published);
    return r;
  };
  /** n as its peers see it: its addresses, blocks and what it published. */
  const peer = (n: ContractNode): Peer => {
    const p = published.get(n.name) ?? {};
    return { name: n.name, ips: n.ips, blocks: n.blocks, vxlanMac: p.vxlanMac, backend: type, wireguard: p.wireguard };
  };
  const pingOnce = async (from: ContractNode, to: ContractNode, family: 0 | 1): Promise<boolean> =>
    (await h().exec(from, ['ping', family === 1 ? '-6' : '-4', '-c', '1', '-W', '1', '-I', from.podAddresses[family] as string, to.podAddresses[family] as string])).ok;
  /** Reachable: up to three tries (a first packet may wait on neighbour discovery). Unreachable: one try. */
  const ping = async (from: ContractNode, to: ContractNode, family: 0 | 1, tries = 3): Promise<boolean> => {
    for (let i = 0; i < tries; i++) if (await pingOnce(from, to, family)) return true;
    return false;
  };
  const unreachable = async (from: ContractNode, to: ContractNode, family: 0 | 1): Promise<boolean> => !(await ping(from, to, family, 1));
  const bothWays = async (): Promise<boolean[]> => {
    const [a, b] = h().nodes;
    return [await ping(a, b, 0), await ping(b, a, 0), await ping(a, b, 1), await ping(b, a, 1)];
  };
  /** Routes this backend installed (protocol 77) towards `to`'s blocks, as `ip route` shows them. */
  const routesTowards = async (on: ContractNode, to: ContractNode): Promise<string[]> => {
    const out: string[] = [];
    for (const fam of ['-4', '-6']) {
      const r = await h().exec(on, ['ip', fam, '-j', 'route', 'show', 'proto', '77']);
      for (const x of JSON.parse(r.stdout || '[]') as Array<{ dst: string }>) if (to.blocks.includes(x.dst)) out.push(x.dst);
    }
    return out.sort();
  };

  it(`${type}: set up twice without harm, and pods' MTU is the uplink's less the backend's overhead`, async () => {
    const [a, b] = h().nodes;
    const first = await run(a, 'setup', []);
    const again = await run(a, 'setup', []);
    await run(b, 'setup', []);
    assert.equal(again.podMtu, first.podMtu);
    assert.equal(first.podMtu, a.uplinkMtu - OVERHEAD[type]);
  });

  it(`${type}: reconciled towards each other, pods of both nodes reach each other in both families`, async () => {
    const [a, b] = h().nodes;
    assert.deepEqual([await unreachable(a, b, 0), await unreachable(b, a, 0), await unreachable(a, b, 1), await unreachable(b, a, 1)], [true, true, true, true], 'nothing routes before reconcile');
    const ra = await run(a, 'reconcile', [peer(b)]);
    const rb = await run(b, 'reconcile', [peer(a)]);
    assert.deepEqual([ra.problems, rb.problems], [[], []]);
    assert.ok(ra.changes > 0 && rb.changes > 0);
    assert.deepEqual(await routesTowards(a, b), [...b.blocks].sort());
    assert.deepEqual(await bothWays(), [true, true, true, true]);
  });

  it(`${type}: a second reconcile changes nothing; a route deleted behind its back comes back`, async () => {
    const [a, b] = h().nodes;
    assert.equal((await run(a, 'reconcile', [peer(b)])).changes, 0);
    const del = await h().exec(a, ['ip', 'route', 'del', b.blocks[0] as string, 'proto', '77']);
    assert.ok(del.ok);
    assert.ok(await unreachable(a, b, 0));
    assert.ok((await run(a, 'reconcile', [peer(b)])).changes > 0);
    assert.equal(await ping(a, b, 0), true);
  });

  it(`${type}: a peer no longer listed is no longer routed to`, async () => {
    const [a, b] = h().nodes;
    assert.ok((await run(a, 'reconcile', [])).changes > 0);
    assert.deepEqual(await routesTowards(a, b), []);
    assert.ok(await unreachable(a, b, 0));
    assert.ok(await unreachable(a, b, 1));
  });

  // WireGuard keeps its unreachable routes for the pod ranges: they carry nothing, and stop pods
  // still on a leaving node from reaching other nodes' pods in clear (uninstall removes them).
  it(`${type}: teardown leaves no link and no route of its own that carries traffic, and may run twice`, async () => {
    const [a, b] = h().nodes;
    await run(a, 'reconcile', [peer(b)]);
    await run(a, 'teardown', []);
    await run(a, 'teardown', []);
    const links = JSON.parse((await h().exec(a, ['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>;
    assert.deepEqual(links.map((l) => l.ifname).filter((n) => n.startsWith('weft')), []);
    for (const fam of ['-4', '-6']) {
      const routes = JSON.parse((await h().exec(a, ['ip', '-j', fam, 'route', 'show', 'proto', '77'])).stdout || '[]') as Array<{ dst: string; type?: string }>;
      assert.deepEqual(routes.filter((r) => r.type !== 'unreachable'), []);
    }
  });
}
