import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HealthReply } from '../agent/api.js';
import type { DoctorView } from '../agent/doctor-view.js';
import { vtepMac } from '../datapath/vxlan.js';
import { exitStatus, judgeCluster, judgeNode, type Finding, type NodeObservation } from './judge.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');
const MAC2 = vtepMac('node-2');

/** A healthy vxlan lab node-1 with one pod and one peer, node-2. */
function healthy(): NodeObservation {
  const health: HealthReply = {
    ok: true,
    pools: [{ family: 4, cidr: '10.244.0.0/24', size: '254', used: 1, free: '253' }],
    attachments: 1,
    memory: { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 },
    mtu: 1450,
    cluster: { node: 'node-1', backend: 'vxlan', blocks: ['10.244.0.0/24'], peers: ['node-2'], problems: [], datastoreConnected: true, silentAgents: [], nodeGraceSeconds: 86400 },
    policy: { fingerprint: 'f1', syncs: 3, problems: [] },
  };
  const view: DoctorView = {
    now: new Date(NOW).toISOString(),
    stateDir: '/s',
    podMtu: 1450,
    attachments: [{ containerId: 'c1', ifName: 'eth0', hostIf: 'weft0123456789a', state: 'ready', addresses: ['10.244.0.2/32'] }],
    reservations: [{ address: '10.244.0.2', containerId: 'c1', ifName: 'eth0' }],
    cluster: {
      node: 'node-1',
      transport: 'vxlan',
      uplink: { dev: 'eth0', mtu: 1500, ips: ['198.18.0.11'] },
      blocks: ['10.244.0.0/24'],
      clusterCidrs: ['10.244.0.0/16'],
      peers: [{ name: 'node-2', ips: ['198.18.0.12'], blocks: ['10.244.1.0/24'], vxlanMac: MAC2, backend: 'vxlan' }],
      device: 'weft.vxlan',
      leaseDurationSeconds: 10,
      leases: [{ node: 'node-1', renewTime: new Date(NOW - 1000).toISOString() }, { node: 'node-2', renewTime: new Date(NOW - 2000).toISOString() }],
    },
    policyInForce: { generation: 7, version: 3 },
  };
  return {
    target: { node: 'node-1', netns: 'wl-t.node-1', lab: 't', socket: '/l/agent.sock', confDir: '/l/net.d', binDir: '/l/bin' },
    health,
    view,
    kernel: {
      forwarding: { 4: '1', 6: '1' },
      links: [
        { name: 'eth0', mtu: 1500, up: true, kind: 'veth' },
        { name: 'weft.vxlan', mtu: 1450, up: true, kind: 'vxlan' },
        { name: 'weft0123456789a', mtu: 1450, up: true, kind: 'veth' },
      ],
      routes: [{ dst: '10.244.1.0/24', gateway: '10.244.1.1', dev: 'weft.vxlan', type: 'unicast' }],
      neighbours: [{ dst: '10.244.1.1', dev: 'weft.vxlan', lladdr: MAC2 }],
      fdb: [{ mac: MAC2, dst: '198.18.0.12', permanent: true }],
      tables: [
        { family: 'inet', name: 'weft_policy' },
        { family: 'inet', name: 'weft_masq' },
      ],
      policyTable: { generation: 7, version: 3 },
      errors: [],
    },
    files: { conflistPath: '/l/net.d/10-weft.conflist', conflist: { text: JSON.stringify({ plugins: [{ type: 'weft', socket: '/l/agent.sock' }] }) }, earlier: [], pluginPath: '/l/bin/weft', plugin: 'ok' },
    now: NOW,
    expectPolicy: true,
  };
}

const failed = (fs: Finding[]): Finding[] => fs.filter((f) => f.result === 'fail');
const only = (fs: Finding[], check: string): Finding => {
  const f = failed(fs);
  assert.deepEqual(
    f.map((x) => x.check),
    [check],
    JSON.stringify(f, null, 1),
  );
  return f[0] as Finding;
};

describe('weft doctor judge', () => {
  it('passes a healthy node: exit 0, no failure', () => {
    const fs = judgeNode(healthy(), { policyFingerprint: 'f1', nodes: ['node-1', 'node-2'] });
    assert.deepEqual(failed(fs), []);
    assert.equal(exitStatus(fs), 0);
    assert.equal(fs.find((f) => f.check === 'wireguard')?.result, 'skip');
  });

  it('a deleted route: routes fails naming the peer block and the ip route replace that restores it', () => {
    const o = healthy();
    o.kernel.routes = [];
    const f = only(judgeNode(o), 'routes');
    assert.match(f.problems[0]?.what ?? '', /no route to node-2's block 10\.244\.1\.0\/24/);
    assert.equal(f.problems[0]?.fix, 'ip netns exec wl-t.node-1 ip route replace 10.244.1.0/24 via 10.244.1.1 dev weft.vxlan onlink proto 77');
    assert.equal(exitStatus(judgeNode(o)), 1);
  });

  it('a wrong route and a stale one', () => {
    const o = healthy();
    o.kernel.routes = [
      { dst: '10.244.1.0/24', gateway: '10.244.9.1', dev: 'weft.vxlan', type: 'unicast' },
      { dst: '10.244.5.0/24', gateway: '10.244.5.1', dev: 'weft.vxlan', type: 'unicast' },
    ];
    const f = only(judgeNode(o), 'routes');
    assert.equal(f.problems.length, 2);
    assert.match(f.problems[1]?.fix ?? '', /ip route del 10\.244\.5\.0\/24 dev weft\.vxlan proto 77$/);
  });

  it('a flushed policy table: policy-table fails and names the restart; a changed one too', () => {
    const o = healthy();
    delete o.kernel.policyTable;
    o.kernel.tables = o.kernel.tables.filter((t) => t.name !== 'weft_policy');
    assert.match(only(judgeNode(o), 'policy-table').problems[0]?.fix ?? '', /^weft lab node restart node-1 --lab t/);
    const p = healthy();
    p.kernel.policyTable = { generation: 7, version: 9 };
    assert.match(only(judgeNode(p), 'policy-table').problems[0]?.what ?? '', /changed behind the agent's back/);
  });

  it("an agent behind the datastore's policy fingerprint: policy-sync fails", () => {
    only(judgeNode(healthy(), { policyFingerprint: 'f2' }), 'policy-sync');
  });

  it('a wrong MTU on the VXLAN device or a pod link: mtu fails with the ip link set that restores it', () => {
    const o = healthy();
    (o.kernel.links[1] as { mtu: number }).mtu = 1400;
    (o.kernel.links[2] as { mtu: number }).mtu = 9000;
    const f = only(judgeNode(o), 'mtu');
    assert.deepEqual(
      f.problems.map((p) => p.fix),
      ['ip netns exec wl-t.node-1 ip link set dev weft.vxlan mtu 1450', 'ip netns exec wl-t.node-1 ip link set dev weft0123456789a mtu 1450'],
    );
  });

  it('pod MTU plus the overhead over the uplink MTU fails; nodes with different pod MTUs fail the cluster check', () => {
    const o = healthy();
    (o.kernel.links[0] as { mtu: number }).mtu = 1450;
    assert.match(only(judgeNode(o), 'mtu').problems[0]?.what ?? '', /exceeds the uplink eth0's MTU 1450/);
    const a = healthy();
    const b = healthy();
    b.target = { ...b.target, node: 'node-2' };
    (b.health as HealthReply).mtu = 1500;
    assert.deepEqual(
      judgeCluster([a, b]).map((f) => [f.check, f.node, f.result]),
      [['mtu', 'node-2', 'fail']],
    );
  });

  it('a stopped agent: agent fails naming the restart; checks that need it skip, kernel-only ones still run', () => {
    const o = healthy();
    delete o.health;
    delete o.view;
    o.agentError = 'ECONNREFUSED';
    o.kernel.forwarding[6] = '0';
    const fs = judgeNode(o);
    const agent = fs.find((f) => f.check === 'agent');
    assert.equal(agent?.result, 'fail');
    assert.equal(agent?.problems[0]?.fix, 'weft lab node restart node-1 --lab t');
    assert.equal(fs.find((f) => f.check === 'routes')?.result, 'skip');
    assert.equal(fs.find((f) => f.check === 'forwarding')?.result, 'fail', 'forwarding is read from the kernel');
    assert.equal(fs.find((f) => f.check === 'cni-config')?.result, 'pass');
  });

  it('forwarding off, FDB and neighbour missing, leaks, CNI config, clock skew and a silent peer each fail their check', () => {
    const cases: Array<[string, (o: NodeObservation) => void, RegExp]> = [
      ['forwarding', (o) => (o.kernel.forwarding[4] = '0'), /sysctl -w net\.ipv4\.ip_forward=1/],
      ['vxlan', (o) => (o.kernel.fdb = []), /bridge fdb replace .* dev weft\.vxlan dst 198\.18\.0\.12 self permanent/],
      ['vxlan', (o) => (o.kernel.neighbours = []), /ip neigh replace 10\.244\.1\.1 lladdr .* nud permanent/],
      ['leaks', (o) => o.kernel.links.push({ name: 'weftfedcba98765', mtu: 1450, up: true, kind: 'veth' }), /ip link del weftfedcba98765/],
      ['leaks', (o) => (o.view as DoctorView).reservations.push({ address: '10.244.0.9', containerId: 'gone', ifName: 'eth0' }), /cni gc/],
      ['cni-config', (o) => (o.files.plugin = 'missing'), /weft install --cni-bin-dir \/l\/bin --cni-conf-dir \/l\/net\.d --socket \/l\/agent\.sock/],
      ['cni-config', (o) => (o.files.earlier = ['/l/net.d/00-other.conflist']), /move \/l\/net\.d\/00-other\.conflist/],
      ['cni-config', (o) => (o.files.conflist = { text: JSON.stringify({ plugins: [{ type: 'weft', socket: '/other.sock' }] }) }), /weft install/],
      ['clock', (o) => ((o.view as DoctorView).cluster?.leases.push({ node: 'node-3', renewTime: new Date(NOW + 60_000).toISOString() }), undefined), /timedatectl/],
      ['peer-agents', (o) => (o.health as HealthReply).cluster?.silentAgents.push({ node: 'node-2', silentSeconds: 30 }), /weft lab node restart node-2/],
      ['datastore', (o) => ((o.health as HealthReply).cluster as { datastoreConnected: boolean }).datastoreConnected = false, /weft lab datastore start/],
      ['masquerade', (o) => (o.kernel.tables = o.kernel.tables.filter((t) => t.name !== 'weft_masq')), /restores it/],
    ];
    for (const [check, inject, fix] of cases) {
      const o = healthy();
      inject(o);
      const f = only(judgeNode(o), check);
      assert.match(f.problems[0]?.fix ?? '', fix, check);
      assert.ok(f.problems.every((p) => p.what && p.why && p.fix));
    }
  });

  it('outside a lab, fixes run on the node itself and the agent is restarted by its supervisor', () => {
    const o = healthy();
    o.target = { node: 'n1', socket: '/l/agent.sock', confDir: '/etc/cni/net.d', binDir: '/opt/cni/bin' };
    o.kernel.routes = [];
    assert.match(only(judgeNode(o), 'routes').problems[0]?.fix ?? '', /^ip route replace /);
    delete o.health;
    assert.match(judgeNode(o).find((f) => f.check === 'agent')?.problems[0]?.fix ?? '', /^systemctl restart weft-agent/);
  });
});
