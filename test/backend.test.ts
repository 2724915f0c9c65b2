import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { BackendContext } from '../src/datapath/backend.js';
import { backendContract, type BackendHarness, type ContractNode } from '../src/datapath/backend.contract.js';
import { BACKENDS, type TransportType } from '../src/datapath/backend-type.js';
import { endProcess } from '../src/kernel/exec.js';
import { createNamedNetns, deleteNamedNetns, netnsPids } from '../src/kernel/netns.js';
import { UAPI_DIR } from '../src/kernel/wireguard.js';
import { randomPrefix } from '../src/lab/sandbox.js';
import { privilegedSkip, ROOT } from './helpers/env.js';

/**
 * The backend contract (src/datapath/backend.contract.ts) against every transport of the
 * registry (the backends, and WireGuard, which stands in for them where the cluster encrypts),
 * on the real kernel: two node netns per transport, joined by a veth pair (the underlay), each
 * with one pod address per family of its own blocks.
 */
const skip = privilegedSkip();
const WORKER = join(ROOT, 'build', 'test', 'helpers', 'backend-worker.js');

function run(argv: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

function must(argv: string[]): void {
  const r = run(argv);
  assert.ok(r.ok, `${argv.join(' ')}: ${r.stderr}`);
}

const TRANSPORTS: TransportType[] = [...BACKENDS, 'wireguard'];

for (const type of TRANSPORTS) {
  describe(`backend contract: ${type}`, { skip }, () => {
    const prefix = randomPrefix('wbk');
    // Made in `before`: a describe whose tests are all filtered out runs no hooks.
    let stateRoot = '';
    const nodes: [ContractNode, ContractNode] = [1, 2].map((i) => ({
      name: `node-${i}`,
      ips: [`172.31.250.${i}`, `fd00:31:250::${i}`],
      uplinkMtu: 1500,
      blocks: [`10.250.${i}.0/24`, `fd00:250:${i}::/64`],
      podAddresses: [`10.250.${i}.2`, `fd00:250:${i}::2`],
    })) as [ContractNode, ContractNode];
    const netns = (n: ContractNode): string => `${prefix}-${n.name}`;
    const harness: BackendHarness = {
      nodes,
      run: async (node, op, peers) => {
        const ctx: BackendContext = {
          nodeName: node.name,
          uplink: { dev: 'ul0', mtu: node.uplinkMtu, ips: node.ips },
          blocks: node.blocks,
          settings: { type: type === 'host-gw' ? 'host-gw' : 'vxlan' },
          clusterCidrs: ['10.250.0.0/16', 'fd00:250::/48'],
          stateDir: join(stateRoot, node.name),
          // Both nodes' wireguard-go serve their sockets from this machine's /var/run/wireguard.
          ...(type === 'wireguard' ? { encryption: { type, port: 51820 }, wireguardDevice: `weft.wg${createHash('sha256').update(netns(node)).digest('hex').slice(0, 8)}` } : {}),
        };
        const stdout = await new Promise<string>((resolve, reject) => {
          execFile('nsenter', [`--net=/run/netns/${netns(node)}`, '--', process.execPath, WORKER, JSON.stringify({ type, op, ctx, peers })], { encoding: 'utf8', timeout: 30_000 }, (err, out, errText) =>
            err ? reject(new Error(`${op} on ${node.name}: ${errText || err.message}`)) : resolve(out),
          );
        });
        return JSON.parse(stdout) as Awaited<ReturnType<BackendHarness['run']>>;
      },
      exec: async (node, argv) => {
        const r = run(['ip', 'netns', 'exec', netns(node), ...argv]);
        return { ok: r.ok, stdout: r.stdout };
      },
    };

    before(async () => {
      stateRoot = mkdtempSync(join(tmpdir(), 'weft-backend-'));
      for (const n of nodes) {
        await createNamedNetns(netns(n));
        must(['ip', '-n', netns(n), 'link', 'set', 'lo', 'up']);
      }
      const [a, b] = nodes;
      must(['ip', '-n', netns(a), 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', netns(b)]);
      for (const n of nodes) {
        const ns = netns(n);
        must(['ip', '-n', ns, 'addr', 'add', `${n.ips[0]}/24`, 'dev', 'ul0']);
        must(['ip', '-n', ns, 'addr', 'add', `${n.ips[1]}/64`, 'dev', 'ul0', 'nodad']);
        // No duplicate address detection on the underlay: a tentative link-local address would
        // hold back neighbour discovery for the first IPv6 pings (the lab does the same).
        must(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.ul0.accept_dad=0']);
        must(['ip', '-n', ns, 'link', 'set', 'ul0', 'up']);
        // The pod addresses live on lo (this kernel has no dummy links): what matters is that
        // the node delivers them locally, as it delivers a pod's through its veth.
        must(['ip', '-n', ns, 'addr', 'add', `${n.podAddresses[0]}/32`, 'dev', 'lo']);
        must(['ip', '-n', ns, 'addr', 'add', `${n.podAddresses[1]}/128`, 'dev', 'lo', 'nodad']);
      }
    });
    after(async () => {
      // A wireguard-go left by a failed test would keep its netns alive.
      for (const n of nodes) await Promise.all((await netnsPids(netns(n)).catch(() => [] as number[])).map((p) => endProcess(p, 3000)));
      for (const n of nodes) await deleteNamedNetns(netns(n)).catch(() => undefined);
      if (stateRoot) rmSync(stateRoot, { recursive: true, force: true });
      // wireguard-go's socket directory, when nothing else uses it.
      try {
        rmdirSync(UAPI_DIR);
      } catch {
        /* in use, or not there */
      }
    });

    backendContract(type, () => harness);
  });
}
