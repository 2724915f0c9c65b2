import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labStatus } from '../../src/lab/lab.js';
import type { FlowRecord } from '../../src/observe/flow.js';
import { CLI, ROOT, privilegedSkip } from '../helpers/env.js';
import { startLab, type TestLab } from '../helpers/lab.js';
import { B_FROM_C, NO_TELNET } from '../helpers/flow-policies.js';
import { parsePrometheusText, sampleValue, type Sample } from '../helpers/prom-text.js';
import { weft } from '../helpers/weft-cli.js';

/**
 * Flows and metrics in a real 2-node lab: probes that policy blocks appear in `weft flows` as
 * dropped with the deciding NetworkPolicy or WeftClusterPolicy rule named, allowed ones as
 * forwarded on both nodes, a kernel refusal (an unreachable route) with its reason; the flags
 * filter; --follow streams; each agent's metrics are scraped on their TCP listener inside the
 * node's netns and parsed as Prometheus text, and the Grafana dashboard uses only metrics that
 * exist.
 */
const skip = privilegedSkip();

const POLICIES = `${B_FROM_C}---${NO_TELNET}`;


function flowsJson(lab: TestLab, flags: string[]): FlowRecord[] {
  const r = weft(['flows', '--lab', lab.name, '--json', ...flags]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as FlowRecord);
}

/** Polls `weft flows` until a record passes `want` (records reach the agent in ~100 ms). */
async function waitForFlow(lab: TestLab, flags: string[], want: (r: FlowRecord) => boolean, what: string): Promise<FlowRecord> {
  let seen: FlowRecord[] = [];
  for (let i = 0; i < 50; i++) {
    seen = flowsJson(lab, flags);
    const hit = seen.find(want);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no flow record ${what} within 5 s; records: ${JSON.stringify(seen, null, 1).slice(0, 3000)}`);
}

/** GET a URL from inside a node's netns (the metrics listener is on its loopback). */
function fetchInNetns(netns: string, url: string): string {
  const script = "fetch(process.argv[1]).then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); }, (e) => { console.error(e.message); process.exit(1); })";
  const r = spawnSync('ip', ['netns', 'exec', netns, process.execPath, '-e', script, url], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `GET ${url} in ${netns}: ${r.stderr}`);
  return r.stdout;
}

function getOnSocket(socket: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('flows and metrics in a lab', { skip }, () => {
  let lab: TestLab;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-observe-'));
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'file' });
    await lab.ns('x');
    await lab.pod({ namespace: 'x', name: 'a', node: 'node-1', labels: { app: 'a' } });
    await lab.pod({ namespace: 'x', name: 'b', node: 'node-2', labels: { app: 'b' } });
    await lab.pod({ namespace: 'x', name: 'c', node: 'node-1', labels: { app: 'c' } });
    const file = join(dir, 'policies.yaml');
    writeFileSync(file, POLICIES);
    const applied = weft(['apply', '-f', file, '--lab', lab.name]);
    assert.equal(applied.code, 0, applied.stderr);
  });

  after(async () => {
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a probe a NetworkPolicy blocks is a dropped flow naming the policy, in trace\'s words', async () => {
    const probe = await lab.probe('x/a', 'x/b', 80);
    assert.equal(probe.ok, false, 'x/a may not reach x/b');
    const r = await waitForFlow(lab, ['--verdict', 'dropped', '--pod', 'x/b'], (f) => f.source.pod === 'x/a' && f.destination.port === 80, 'x/a -> x/b:80 dropped');
    assert.equal(r.node, 'node-2', 'dropped where x/b is isolated');
    assert.equal(r.direction, 'ingress');
    assert.equal(r.dropReason, 'policy-isolated');
    assert.deepEqual(r.policies, ['x/b-from-c']);
    assert.match(r.explanation ?? '', /^ingress to x\/b: BLOCKED — isolated by x\/b-from-c, and no rule of theirs allows it; x\/b-from-c ingress\[0\]/);
    assert.equal(r.protocol, 'TCP');
    assert.deepEqual(r.source.labels, { app: 'a' });
    assert.equal(r.source.node, 'node-1');
    // The same words `weft policy trace` prints for this flow.
    const trace = weft(['policy', 'trace', 'x/a', 'x/b', '80/TCP', '--lab', lab.name]);
    assert.match(trace.stdout, /ingress to x\/b: BLOCKED — isolated by x\/b-from-c, and no rule of theirs allows it/);
    const text = weft(['flows', '--lab', lab.name, '--verdict', 'dropped', '--pod', 'x/b']);
    assert.match(text.stdout, /node-2 DROPPED +ingress x\/a \(10\.244\.\d+\.\d+\):\d+ -> x\/b \(10\.244\.\d+\.\d+\):80 TCP S\n {4}policy-isolated: ingress to x\/b: BLOCKED/);
  });

  it('an allowed connection is forwarded: egress on the sender\'s node, ingress on the receiver\'s', async () => {
    assert.equal((await lab.probe('x/c', 'x/b', 80)).ok, true);
    const egress = await waitForFlow(lab, ['--verdict', 'forwarded', '--pod', 'x/c', '--port', '80'], (f) => f.node === 'node-1' && f.destination.pod === 'x/b', 'x/c -> x/b forwarded on node-1');
    assert.equal(egress.direction, 'egress');
    const ingress = await waitForFlow(lab, ['--verdict', 'forwarded', '--pod', 'x/c', '--port', '80'], (f) => f.node === 'node-2' && f.source.port === egress.source.port, 'the same connection on node-2');
    assert.equal(ingress.direction, 'ingress');
    assert.equal(ingress.tcpFlags, 'S', 'a connection is recorded at its first packet');
    // Once per node: the later packets of the connection (its data, its FIN) make no record.
    const ofIt = flowsJson(lab, ['--pod', 'x/c', '--port', '80']).filter((f) => f.source.port === egress.source.port);
    assert.deepEqual(ofIt.map((f) => f.node).sort(), ['node-1', 'node-2'], JSON.stringify(ofIt));
  });

  it('a WeftClusterPolicy Deny names the rule; both families are recorded', async () => {
    assert.equal((await lab.probe('x/c', 'x/a', 23, 'TCP', 6)).ok, false);
    const r = await waitForFlow(lab, ['--verdict', 'dropped', '--port', '23'], (f) => f.source.pod === 'x/c', 'x/c -> x/a:23 dropped');
    assert.equal(r.family, 6);
    assert.equal(r.dropReason, 'policy-denied');
    assert.deepEqual(r.policies, ['WeftClusterPolicy no-telnet']);
    assert.match(r.explanation ?? '', /WeftClusterPolicy no-telnet \(priority 10\) ingress\[0\] "telnet": Deny/);
  });

  it('the kernel refusing a pod\'s packet (an unreachable route) is a drop with its reason', async () => {
    const netns = `${lab.state().prefix}.node-1`;
    const target = '10.244.200.9';
    spawnSync('ip', ['-n', netns, 'route', 'add', 'unreachable', `${target}/32`]);
    try {
      spawnSync('ip', ['netns', 'exec', `${lab.state().prefix}.p-x-a`, 'ping', '-c', '1', '-W', '1', target], { encoding: 'utf8' });
      const r = await waitForFlow(lab, ['--verdict', 'dropped', '--protocol', 'icmp'], (f) => f.destination.address === target, 'the unreachable ping');
      assert.equal(r.dropReason, 'host-unreachable');
      assert.equal(r.source.pod, 'x/a');
      assert.equal(r.node, 'node-1');
    } finally {
      spawnSync('ip', ['-n', netns, 'route', 'del', 'unreachable', `${target}/32`]);
    }
  });

  it('filters: each flag narrows, and a bad one says what is accepted', () => {
    const all = flowsJson(lab, []);
    assert.ok(all.length >= 5, `records: ${all.length}`);
    assert.deepEqual([...new Set(flowsJson(lab, ['--protocol', 'UDP']).map((f) => f.protocol))].filter((p) => p !== 'UDP'), []);
    assert.ok(flowsJson(lab, ['--port', '23']).every((f) => f.source.port === 23 || f.destination.port === 23));
    assert.equal(flowsJson(lab, ['--namespace', 'nowhere']).length, 0);
    assert.equal(flowsJson(lab, ['--since', '1h']).length, all.length);
    const times = all.map((f) => f.time);
    assert.deepEqual(times, [...times].sort(), 'nodes merged in time order');
    const bad = weft(['flows', '--lab', lab.name, '--verdict', 'denied']);
    assert.equal(bad.code, 2, 'bad arguments');
    assert.match(bad.stderr, /--verdict "denied": expected forwarded or dropped/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  });

  it('--follow prints new records as they come, until interrupted', async () => {
    // --since: the probe's record is in the backlog if it comes before the stream is open, and
    // streamed if after — no wait for the command to start.
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, 'flows', '--lab', lab.name, '--follow', '--since', '1m', '--json', '--verdict', 'dropped', '--pod', 'x/b'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const fresh = (): FlowRecord[] => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as FlowRecord).filter((f) => Date.parse(f.time) >= started);
    try {
      assert.equal((await lab.probe('x/a', 'x/b', 80)).ok, false);
      for (let i = 0; i < 100 && fresh().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(fresh().length >= 1, `no new record followed; got: ${out.slice(0, 2000)}`);
      assert.equal(fresh()[0]?.source.pod, 'x/a');
      // And one that comes later still, on the open stream.
      const before = fresh().length;
      assert.equal((await lab.probe('x/a', 'x/b', 80)).ok, false);
      for (let i = 0; i < 100 && fresh().length === before; i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(fresh().length > before, 'a record made while following is printed');
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await closed, 0);
  });

  it('each agent serves Prometheus metrics: parsed, and telling what happened', async () => {
    const status = await labStatus(lab.name);
    const byNode = new Map<string, Sample[]>();
    for (const n of status.nodes) {
      assert.ok(n.metrics, `${n.name} lists its metrics URL`);
      assert.equal(n.metrics.url, 'http://127.0.0.1:9476/metrics');
      const text = fetchInNetns(n.metrics.netns, n.metrics.url);
      const { samples, types } = parsePrometheusText(text);
      byNode.set(n.name, samples);
      assert.equal(types.get('weft_cni_request_duration_seconds'), 'histogram');
      assert.equal(sampleValue(samples, 'weft_build_info', { node: n.name }), 1);
      assert.equal(sampleValue(samples, 'weft_datastore_connected'), 1);
      assert.equal(sampleValue(samples, 'weft_peers'), 1);
      assert.equal(sampleValue(samples, 'weft_flow_buffer_capacity'), 4096);
      assert.ok((sampleValue(samples, 'weft_policy_rules') ?? 0) > 0);
      assert.ok((sampleValue(samples, 'weft_cni_request_duration_seconds_count', { command: 'ADD', result: 'success' }) ?? 0) >= 1, `${n.name}: its pods' ADDs are counted`);
      // The socket serves the same registry.
      assert.match(await getOnSocket(n.metrics.socket, '/metrics'), /^# HELP /m);
    }
    const n1 = byNode.get('node-1') as Sample[];
    const n2 = byNode.get('node-2') as Sample[];
    assert.equal(sampleValue(n1, 'weft_pods_attached'), 2);
    assert.equal(sampleValue(n2, 'weft_pods_attached'), 1);
    assert.equal(sampleValue(n1, 'weft_ipam_addresses_used', { pool: '10.244.0.0/24' }), 2);
    assert.equal(sampleValue(n1, 'weft_ipam_addresses_total', { pool: '10.244.0.0/24' }), 253);
    assert.ok((sampleValue(n2, 'weft_policy_drops_total', { reason: 'policy-isolated', direction: 'ingress' }) ?? 0) >= 2, 'the kernel counted the blocked probes on node-2');
    assert.ok((sampleValue(n1, 'weft_policy_drops_total', { reason: 'policy-denied', direction: 'ingress' }) ?? 0) >= 1, 'and the denied one on node-1');
    assert.ok((sampleValue(n2, 'weft_flow_records_total', { verdict: 'dropped', reason: 'policy-isolated' }) ?? 0) >= 2);
    assert.ok((sampleValue(n1, 'weft_flow_records_total', { verdict: 'dropped', reason: 'host-unreachable' }) ?? 0) >= 1);
    assert.ok((sampleValue(n1, 'weft_policy_sync_duration_seconds_count', { result: 'success' }) ?? 0) >= 1);
    assert.equal(sampleValue(n1, 'weft_flows_lost_total', { source: 'kernel' }), 0);
    assert.equal(sampleValue(n1, 'weft_flows_unrecorded_total'), 0, 'no connection past the record limit here');

    // The Grafana dashboard reads only metrics an agent exports.
    const exported = new Set([...n1, ...n2].map((s) => s.name));
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'weft-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    assert.ok(dashboard.panels.length >= 10);
    for (const p of dashboard.panels) {
      for (const t of p.targets) {
        const names = t.expr.match(/\b(weft_[a-z_]+|process_[a-z_]+)\b/g) ?? [];
        assert.ok(names.length > 0, `${p.title}: ${t.expr}`);
        for (const name of names) assert.ok(exported.has(name), `panel "${p.title}" reads ${name}, which no agent exports`);
      }
    }
  });
});
