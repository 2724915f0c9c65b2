import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { privilegedSkip } from '../helpers/env.js';
import { etcdMissing } from '../helpers/etcd.js';
import { labIp, startLab, type TestLab } from '../helpers/lab.js';
import { withLabStore } from '../../src/lab/lab.js';

/**
 * Pods on different nodes reach each other over IPv4 and IPv6 — for each backend on each
 * datastore — keeping their own addresses; pods leaving the cluster are masqueraded.
 */
const skip = privilegedSkip();

for (const backend of ['vxlan', 'host-gw'] as const) {
  for (const datastore of ['file', 'etcd', 'kubernetes'] as const) {
    describe(`cross-node: ${backend} on ${datastore}`, { skip: skip ?? (datastore === 'etcd' ? etcdMissing() : undefined) }, () => {
      let lab: TestLab | undefined;
      after(async () => {
        await lab?.down();
      });

      it('pod to pod across nodes, v4 and v6, TCP and UDP, sources kept; to the outside, the node address', async () => {
        lab = await startLab({ nodes: 2, backend, datastore });
        await lab.ns('x');
        const a = await lab.pod({ namespace: 'x', name: 'a', node: 'node-1' });
        const b = await lab.pod({ namespace: 'x', name: 'b', node: 'node-2' });
        const [a4, a6] = a.addresses;
        for (const family of [4, 6] as const) {
          for (const protocol of ['TCP', 'UDP'] as const) {
            const port = protocol === 'TCP' ? 80 : 53;
            const r = await lab.probe('x/a', 'x/b', port, protocol, family);
            assert.ok(r.ok, `a -> b ${protocol}/${port} IPv${family}: ${r.error}`);
            assert.equal(r.reply, `x/b ${family === 4 ? a4 : a6}`, 'b sees a\'s own pod address: no masquerade between pods');
            const back = await lab.probe('x/b', 'x/a', port, protocol, family);
            assert.ok(back.ok, `b -> a ${protocol}/${port} IPv${family}: ${back.error}`);
          }
        }
        const [node1v4, node1v6] = lab.state().nodes[0]?.ips ?? [];
        const out4 = await lab.probe('x/a', 'external', 80, 'TCP', 4);
        assert.ok(out4.ok, `a -> external IPv4: ${out4.error}`);
        assert.equal(out4.reply, `external ${node1v4}`, 'the external host sees node-1, not the pod');
        const out6 = await lab.probe('x/a', 'external', 80, 'TCP', 6);
        assert.equal(out6.reply, `external ${node1v6}`);
        // The routes are Weft's own and name the other node's blocks.
        const routes = [...labIp(lab, 'node-1', ['route', 'show', 'proto', '77']), ...labIp(lab, 'node-1', ['-6', 'route', 'show', 'proto', '77'])].map((r) => String(r['dst']));
        assert.ok(routes.some((d) => b.addresses[0]?.startsWith(d.split('.').slice(0, 3).join('.'))), `node-1 routes ${routes.join(' ')} cover b`);
        assert.equal(routes.length, 2, 'one route per family to node-2\'s blocks');
        if (datastore === 'kubernetes') {
          // ipam kubernetes, the default there: the blocks are what the "controller manager" (the lab) allocated, no IPBlock leased.
          assert.deepEqual(await withLabStore(lab.state(), async (s) => (await s.list('IPBlock')).items.length), 0);
          assert.ok(b.addresses[0]?.startsWith('10.244.1.'), `node-2's pod is in node-2's Node.spec.podCIDRs (10.244.1.0/24): ${b.addresses[0]}`);
        }
        void b;
      });
    });
  }
}
