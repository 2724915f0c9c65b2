import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { listLabs } from '../../src/lab/lab-state.js';
import { CLI, privilegedSkip } from '../helpers/env.js';

/**
 * `weft policy trace|matrix|diff` as an operator uses them against a lab: the real CLI, exit
 * statuses, --json, and `matrix --probe` holding the evaluator to the datapath. Then the demo,
 * whose exit status says its matrix, probes and trace were what the classic case needs.
 */
const skip = privilegedSkip();

function weft(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env['NODE_EXTRA_CA_CERTS'];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000, env, ...(input !== undefined ? { input } : {}) });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
`;

describe('weft policy (CLI) in a lab', { skip, timeout: 300_000 }, () => {
  const lab = `q${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'weft-policycli-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, POLICY);
  after(() => {
    weft(['lab', 'down', '--name', lab]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('diff before apply, apply, matrix --probe agrees, trace names the rule, diff --delete', () => {
    assert.equal(weft(['lab', 'up', '--name', lab, '--nodes', '2', '--datastore', 'file']).code, 0);
    assert.equal(weft(['lab', 'ns', 'create', 'shop', '--name', lab]).code, 0);
    for (const [pod, node, app] of [['web', 'node-1', 'web'], ['client', 'node-2', 'client'], ['other', 'node-2', 'other']]) {
      const r = weft(['lab', 'pod', 'create', `shop/${pod}`, '--node', node as string, '--label', `app=${app}`, '--port', 'http:80/TCP', '--port', 'dns:53/UDP', '--name', lab]);
      assert.equal(r.code, 0, r.stderr);
    }

    // Before: nothing isolated; the diff names exactly what the policy closes.
    const diff = weft(['policy', 'diff', '-f', file, '--lab', lab]);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /^would CLOSE \(2\):$/m);
    assert.match(diff.stdout, /shop\/client -> shop\/web {2}TCP 1-79, 81-65535, UDP all ports, SCTP all ports, ICMP {2}\(IPv4\+IPv6\)/);
    assert.match(diff.stdout, /shop\/other -> shop\/web {2}TCP all ports, UDP all ports, SCTP all ports, ICMP/);
    assert.match(diff.stdout, /ingress of shop\/web isolated by shop\/web-from-client; no rule allows/);
    const diffJson = JSON.parse(weft(['policy', 'diff', '-f', file, '--lab', lab, '--json']).stdout) as Array<{ from: string; to: string; change: string }>;
    assert.deepEqual(diffJson.map((c) => `${c.change} ${c.from} ${c.to}`).sort(), ['closes shop/client shop/web', 'closes shop/other shop/web']);

    const before = weft(['policy', 'trace', 'shop/other', 'shop/web', '80/TCP', '--lab', lab]);
    assert.equal(before.code, 0);
    assert.match(before.stdout, /ALLOWED/);

    const apply = weft(['apply', '-f', file, '--lab', lab]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /policy in force on 2 nodes/);
    assert.equal(weft(['policy', 'diff', '-f', file, '--lab', lab]).stdout.trim(), 'no pod-to-pod flow would change');

    const m = weft(['policy', 'matrix', '--probe', '--family', 'both', '--lab', lab]);
    assert.equal(m.code, 0, m.stdout + m.stderr);
    assert.match(m.stdout, /probed through the datapath: all agree/);
    // 3 pods × 3 pods × (80/TCP, 53/UDP) × 2 families; blocked: client and other to web on UDP, other to web on TCP.
    assert.match(m.stdout, /^30 of 36 flows allowed by policy/m);
    const mj = JSON.parse(weft(['policy', 'matrix', '--probe', '--lab', lab, '--json']).stdout) as { cells: Array<{ from: string; to: string; allowed: boolean; probed: boolean | null }> };
    assert.equal(mj.cells.length, 18);
    assert.ok(mj.cells.every((c) => c.probed === c.allowed));

    const blocked = weft(['policy', 'trace', 'shop/other', 'shop/web', '80/TCP', '--lab', lab]);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stdout, /ingress to shop\/web: BLOCKED — isolated by shop\/web-from-client/);
    assert.match(blocked.stdout, /shop\/web-from-client ingress\[0\]: from \[pods \[app=client\] in namespace shop\] does not include shop\/other/);
    const allowed = weft(['policy', 'trace', 'shop/client', 'shop/web', '80/TCP', '--family', '6', '--lab', lab, '--json']);
    assert.equal(allowed.code, 0);
    const aj = JSON.parse(allowed.stdout) as { allowed: boolean; dst: string; ingress: { by: { name: string; rule: number } } };
    assert.equal(aj.allowed, true);
    assert.match(aj.dst, /:/);
    assert.deepEqual([aj.ingress.by.name, aj.ingress.by.rule], ['web-from-client', 0]);
    const fromNode = weft(['policy', 'trace', 'node-1', 'shop/web', '80/TCP', '--lab', lab]);
    assert.equal(fromNode.code, 0);
    assert.match(fromNode.stdout, /a node always reaches its own pods/);

    const del = weft(['policy', 'diff', '--delete', '-f', file, '--lab', lab]);
    assert.equal(del.code, 1);
    assert.match(del.stdout, /^would OPEN \(2\):$/m);
  });

  it('refuses bad input like apply does: exit 2, what is accepted, no stack', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, POLICY.replace('ports: [{port: http}]', 'ports: [{port: http, endPort: 90}]'));
    for (const [args, msg] of [
      [['policy', 'diff', '-f', bad, '--lab', lab], /endPort.*numeric|must be a number|may not be specified/i],
      [['policy', 'trace', 'shop/web', 'shop/nope', '80/TCP', '--lab', lab], /no pod shop\/nope/],
      [['policy', 'trace', 'shop/web', 'shop/client', '80', '--lab', lab], /expected PORT\/PROTOCOL/],
      [['policy', 'matrix', '--protocols', 'gre', '--lab', lab], /expected tcp, udp, sctp and\/or icmp/],
    ] as Array<[string[], RegExp]>) {
      const r = weft(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
});

describe('weft demo', { skip: skip ?? (listLabs().includes('demo') ? 'a lab named demo is running' : undefined), timeout: 300_000 }, () => {
  it('runs the classic frontend/api/db case end to end and cleans up', () => {
    const r = weft(['demo']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Exactly the intended matrix\./);
    assert.match(r.stdout, /probed through the datapath: all agree/);
    assert.match(r.stdout, /TCP port 80 from shop\/frontend .* to data\/db .*: BLOCKED/);
    assert.match(r.stdout, /egress from shop\/frontend: BLOCKED by WeftClusterPolicy no-frontend-to-db/);
    assert.match(r.stdout, /nothing of the demo is left/);
    assert.equal(listLabs().includes('demo'), false);
  });
});
