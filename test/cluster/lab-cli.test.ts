import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { listNamedNetns, netnsPids } from '../../src/kernel/netns.js';
import { labDir } from '../../src/lab/lab-state.js';
import { CLI, privilegedSkip } from '../helpers/env.js';

/** `weft lab …` and `weft apply|delete` as scripts use them: real CLI, --json, exit statuses. */
const skip = privilegedSkip();

function weft(args: string[]): { code: number; stdout: string; stderr: string; json: () => unknown } {
  const env = { ...process.env };
  delete env['NODE_EXTRA_CA_CERTS'];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) as unknown };
}

interface StatusJson {
  nodes: Array<{ name: string; agent: string; blocks: string[]; peers: string[] }>;
  namespaces: Array<{ name: string; labels: Record<string, string> }>;
  pods: Array<{ namespace: string; name: string; node: string; labels: Record<string, string>; ports: Array<{ name?: string; port: number; protocol: string }>; addresses: string[] }>;
}

describe('weft lab (CLI)', { skip }, () => {
  const a = `c${randomBytes(3).toString('hex')}`;
  // b's name starts with a's: one lab's commands must never touch the other's namespaces.
  const b = `${a}-x`;
  const dir = mkdtempSync(join(tmpdir(), 'weft-labcli-'));
  after(() => {
    weft(['lab', 'down', '--name', a]);
    weft(['lab', 'down', '--name', b]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('up, namespaces, pods, labels, status --json, probe, exec, matrix', () => {
    const up = weft(['lab', 'up', '--name', a, '--nodes', '2', '--backend', 'host-gw', '--datastore', 'file', '--json']);
    assert.equal(up.code, 0, up.stderr);
    const st0 = up.json() as StatusJson;
    assert.deepEqual(st0.nodes.map((n) => [n.name, n.agent, n.peers.length]), [['node-1', 'running', 1], ['node-2', 'running', 1]]);

    assert.equal(weft(['lab', 'ns', 'create', 'shop', '--label', 'team=web', '--name', a]).code, 0);
    assert.equal(weft(['lab', 'ns', 'label', 'shop', 'tier=front', 'team-', '--name', a]).code, 0);
    const protectedLabel = weft(['lab', 'ns', 'label', 'shop', 'kubernetes.io/metadata.name-', '--name', a]);
    assert.equal(protectedLabel.code, 2);
    assert.match(protectedLabel.stderr, /cannot be changed/);
    const p = weft(['lab', 'pod', 'create', 'shop/web', '--node', 'node-2', '--label', 'app=web', '--port', 'http:80/TCP', '--port', 'dns:53/UDP', '--name', a, '--json']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(weft(['lab', 'pod', 'create', 'shop/client', '--node', 'node-1', '--port', '81/TCP', '--name', a]).code, 0);
    assert.equal(weft(['lab', 'pod', 'label', 'shop/web', 'version=2', 'app-', '--name', a]).code, 0);

    const st = weft(['lab', 'status', '--name', a, '--json']).json() as StatusJson;
    assert.deepEqual(st.namespaces.find((n) => n.name === 'shop')?.labels, { 'kubernetes.io/metadata.name': 'shop', tier: 'front' });
    const web = st.pods.find((x) => x.name === 'web');
    assert.deepEqual(web?.labels, { version: '2' });
    assert.deepEqual(web?.ports, [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }]);
    assert.equal(web?.addresses.length, 2);

    assert.equal(weft(['lab', 'probe', 'shop/client', 'shop/web', '80/TCP', '--name', a]).code, 0);
    assert.equal(weft(['lab', 'probe', 'shop/client', 'shop/web', '53/UDP', '--family', '6', '--name', a]).code, 0);
    const closed = weft(['lab', 'probe', 'shop/client', 'shop/web', '81/TCP', '--name', a, '--json']);
    assert.equal(closed.code, 1);
    assert.equal((closed.json() as { ok: boolean; error: string }).error, 'ECONNREFUSED');
    const ex = weft(['lab', 'exec', 'shop/web', '--name', a, '--', 'ip', '-o', 'addr', 'show', 'eth0']);
    assert.equal(ex.code, 0);
    assert.ok(ex.stdout.includes(web?.addresses[0] as string));
    const m = weft(['lab', 'matrix', '--ports', '80', '--protocols', 'tcp', '--family', 'both', '--name', a, '--json']).json() as { results: Array<{ from: string; to: string; ok: boolean }> };
    assert.equal(m.results.length, 2 * 2 * 2);
    assert.ok(m.results.filter((r) => r.to === 'shop/web').every((r) => r.ok));
  });

  it('apply and delete -f: create, unchanged, configured, deleted', () => {
    const f = join(dir, 'objs.yaml');
    writeFileSync(f, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: data\n  labels: {env: prod}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: data}\nspec: {podSelector: {}}\n');
    assert.match(weft(['apply', '-f', f, '--lab', a]).stdout, /namespace\/data created\nnetworkpolicy\/data\/deny created/);
    assert.match(weft(['apply', '-f', f, '--lab', a]).stdout, /namespace\/data unchanged/);
    writeFileSync(f, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: data\n  labels: {env: test}\n');
    assert.match(weft(['apply', '-f', f, '--lab', a]).stdout, /namespace\/data configured/);
    const st = weft(['lab', 'status', '--name', a, '--json']).json() as StatusJson;
    assert.equal(st.namespaces.find((n) => n.name === 'data')?.labels['env'], 'test');
    assert.match(weft(['delete', '-f', f, '--lab', a]).stdout, /namespace\/data deleted/);
    const bad = weft(['apply', '-f', join(dir, 'nope.yaml'), '--lab', a]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /no such file/);
    // Refused as the API server would, every field named; nothing is written.
    const hostile = join(dir, 'hostile.yaml');
    writeFileSync(hostile, 'apiVersion: v1\nkind: Pod\nmetadata: {name: inj, namespace: shop}\nspec:\n  containers:\n  - name: c\n    ports:\n    - {name: http, containerPort: "80 } ; add table inet pwned"}\n    - {name: big, containerPort: 99999}\n');
    const refused = weft(['apply', '-f', hostile, '--lab', a]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /The Pod "inj" is invalid: spec\.containers\[0\]\.ports\[0\]\.containerPort: Invalid value: "80 } ; add table inet pwned": must be a number/);
    writeFileSync(hostile, 'apiVersion: v1\nkind: Pod\nmetadata: {name: inj, namespace: shop}\nspec:\n  containers:\n  - name: c\n    ports:\n    - {name: big, containerPort: 99999}\n    - {name: big, containerPort: 80}\n');
    const refused2 = weft(['apply', '-f', hostile, '--lab', a]);
    assert.equal(refused2.code, 2);
    assert.match(refused2.stderr, /The Pod "inj" is invalid:\n\* spec\.containers\[0\]\.ports\[0\]\.containerPort: Invalid value: 99999: must be between 1 and 65535, inclusive\n\* spec\.containers\[0\]\.ports\[1\]\.name: Duplicate value: "big"/);
    assert.doesNotMatch(weft(['lab', 'status', '--lab', a, '--json']).stdout, /"inj"/);
  });

  it('clear errors for bad input, with nothing changed', () => {
    const cases: Array<[string[], RegExp]> = [
      [['lab', 'up', '--name', 'Bad_Name'], /use 1-16 of a-z, 0-9 and "-"/],
      [['lab', 'up', '--name', a], /already running/],
      [['lab', 'up', '--name', 'x1', '--backend', 'bgp'], /--backend bgp: expected vxlan or host-gw/],
      [['lab', 'pod', 'create', 'nons/p', '--name', a], /namespace nons does not exist/],
      [['lab', 'pod', 'create', 'shop/p', '--node', 'node-9', '--name', a], /no such node/],
      [['lab', 'pod', 'create', 'shop/p', '--port', 'http:99999/TCP', '--name', a], /expected \[NAME:\]PORT\[\/PROTO\]/],
      [['lab', 'pod', 'create', 'BAD', '--name', a], /is not NAMESPACE\/POD/],
      [['lab', 'probe', 'shop/client', 'shop/web', '80', '--name', a], /expected PORT\/PROTO/],
      [['lab', 'status', '--name', 'nosuchlab'], /no lab named nosuchlab/],
    ];
    for (const [args, msg] of cases) {
      const r = weft(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, msg, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
    }
  });

  it('two labs side by side; without --name a command refuses to guess', () => {
    const up = weft(['lab', 'up', '--name', b, '--nodes', '1', '--datastore', 'file']);
    assert.equal(up.code, 0, up.stderr);
    const amb = weft(['lab', 'status']);
    assert.equal(amb.code, 2);
    assert.match(amb.stderr, /several labs are running/);
    assert.equal(weft(['lab', 'status', '--name', b]).code, 0);
  });

  it('down and up match their own lab exactly (not a lab whose name starts the same); down works after a crash that lost the state file', async () => {
    const of = async (lab: string): Promise<string[]> => (await listNamedNetns()).filter((n) => n.startsWith(`wl-${lab}.`)).sort();
    const bBefore = await of(b);
    assert.ok(bBefore.length >= 3, `lab ${b} has its namespaces (${bBefore.join(', ')})`);
    assert.equal(weft(['lab', 'down', '--name', a]).code, 0);
    assert.deepEqual(await of(a), []);
    assert.deepEqual(await of(b), bBefore, `down of ${a} left ${b} alone`);
    const up = weft(['lab', 'up', '--name', a, '--nodes', '1', '--datastore', 'file']);
    assert.equal(up.code, 0, up.stderr);
    assert.doesNotMatch(up.stdout, /leftovers/, 'a running lab is never taken for leftovers');
    assert.deepEqual(await of(b), bBefore, `up of ${a} left ${b} alone`);
    assert.equal(weft(['lab', 'status', '--name', b]).code, 0, `${b} still answers`);

    for (const ns of await of(b)) {
      for (const pid of await netnsPids(ns)) process.kill(pid, 'SIGKILL');
    }
    rmSync(join(labDir(b), 'lab.json'));
    const down = weft(['lab', 'down', '--name', b]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await of(b), []);
    assert.equal(existsSync(labDir(b)), false);
    assert.ok((await of(a)).length > 0, `the crash clean-up of ${b} left ${a} alone`);
    const d2 = weft(['lab', 'down', '--name', a, '--json']);
    assert.equal(d2.code, 0);
    assert.deepEqual(await of(a), []);
  });
});
