import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { getHealth } from '../../src/agent/health-client.js';
import { labNodeRotateKey, labStatus, labWireguardDevice, startNodeAgent } from '../../src/lab/lab.js';
import { saveLab } from '../../src/lab/lab-state.js';
import { createNamedNetns, deleteNamedNetns } from '../../src/kernel/netns.js';
import { CLI, privilegedSkip } from '../helpers/env.js';
import { kill9, pingFrom, startLab, type TestLab } from '../helpers/lab.js';
import { readPcap } from '../helpers/pcap.js';

/**
 * `weft lab up --encryption wireguard`, checked by what an eavesdropper on the underlay sees
 * (tcpdump on node-1's switch port, every packet between the nodes passes it), by a key
 * rotation under 10 ms pings, by large packets with DF set, by an agent killed under traffic,
 * by `uninstall --all` on an encrypted node, and by the refusal to change encryption on a
 * running cluster. An unencrypted lab under the
 * same capture is the control: the check finds the marker there.
 */
const have = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error === undefined;
const skip =
  privilegedSkip() ??
  (!have('wg') ? 'wireguard-tools is not installed (apt-get install wireguard-tools)' : undefined) ??
  (!have('tcpdump') ? 'tcpdump is not installed (apt-get install tcpdump)' : undefined);

const WG_PORT = 51820;
const MARKER = 'weft-eavesdropper-marker-7f3a9c';
const norm = (a: string): string => (a.includes(':') ? ipaddr.parse(a).toNormalizedString() : a);
const POD_RANGES = ['10.244.0.0/16', 'fd00:10:244::/56'].map((c) => ipaddr.parseCIDR(c));
const inPodRange = (a: string): boolean => POD_RANGES.some(([net, len]) => {
  const x = ipaddr.parse(a);
  return x.kind() === net.kind() && x.match([net, len]);
});

/** Sends the marker from a pod to an address over TCP/80 and UDP/53; returns the pod servers' answers. */
function sendMarker(lab: TestLab, pod: string, target: string): { tcp: string; udp: string } {
  const [ns, name] = pod.split('/');
  const script = `
    const net = require('node:net'), dgram = require('node:dgram');
    const [target, marker] = process.argv.slice(1);
    const tcp = new Promise((ok, ko) => { let got = ''; const s = net.connect(80, target, () => s.write(marker)); s.on('data', (d) => (got += d)); s.on('end', () => ok(got.trim())); s.on('error', ko); s.setTimeout(3000, () => ko(new Error('tcp timeout'))); });
    const udp = new Promise((ok, ko) => { const s = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4'); s.on('message', (m) => { ok(m.toString().trim()); s.close(); }); s.send(marker, 53, target); setTimeout(() => ko(new Error('udp timeout')), 3000).unref(); });
    Promise.all([tcp, udp]).then(([t, u]) => { console.log(JSON.stringify({ tcp: t, udp: u })); process.exit(0); }, (e) => { console.error(e.message); process.exit(1); });`;
  const r = spawnSync('nsenter', [`--net=/run/netns/${lab.state().prefix}.p-${ns}-${name}`, '--', process.execPath, '-e', script, target, MARKER], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `marker ${pod} -> ${target}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { tcp: string; udp: string };
}

/** Captures node-1's switch port while `during` runs; returns the pcap's path. */
async function capture(lab: TestLab, dir: string, during: () => Promise<void>): Promise<string> {
  const file = join(dir, `${lab.name}.pcap`);
  const child = spawn('ip', ['netns', 'exec', lab.state().switchNetns, 'tcpdump', '-Z', 'root', '--immediate-mode', '-i', 'n1', '-U', '-s', '0', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let errText = '';
  try {
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        errText += d.toString();
        if (errText.includes('listening on')) resolve();
      });
      child.on('close', (code) => reject(new Error(`tcpdump exited with ${code}: ${errText}`)));
    });
    await during();
  } finally {
    child.kill('SIGINT');
    await closed;
  }
  return file;
}

/** Pods x/a (node-1) and x/b (node-2) exchange the marker both ways, both families, TCP and UDP; and ping. */
async function exchange(lab: TestLab): Promise<void> {
  const st = lab.state();
  const a = st.pods.find((p) => p.name === 'a')?.addresses ?? [];
  const b = st.pods.find((p) => p.name === 'b')?.addresses ?? [];
  for (const fam of [0, 1]) {
    const ab = sendMarker(lab, 'x/a', b[fam] as string);
    assert.deepEqual(ab, { tcp: `x/b ${a[fam]}`, udp: `x/b ${a[fam]}` }, 'b got the marker from a, from a\'s own address');
    const ba = sendMarker(lab, 'x/b', a[fam] as string);
    assert.deepEqual(ba, { tcp: `x/a ${b[fam]}`, udp: `x/a ${b[fam]}` });
  }
  const ping = await pingFrom(lab, 'x/a', b[0] as string, 5, 20);
  assert.equal(ping.received, 5);
}

/** The pid of the wireguard-go serving a node's device, if any (its process runs in the node's netns). */
function wireguardGoPid(lab: TestLab, node: string): number | undefined {
  const n = lab.state().nodes.find((x) => x.name === node);
  assert.ok(n);
  const pids = spawnSync('ip', ['netns', 'pids', n.netns], { encoding: 'utf8' }).stdout.split('\n').filter((x) => x !== '').map(Number);
  return pids.find((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'wireguard-go';
    } catch {
      return false;
    }
  });
}

function wgPeers(lab: TestLab, node: string): string[] {
  const n = lab.state().nodes.find((x) => x.name === node);
  assert.ok(n);
  const r = spawnSync('ip', ['netns', 'exec', n.netns, 'wg', 'show', labWireguardDevice(n), 'peers'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l !== '');
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

describe('encryption: WireGuard between nodes (2-node lab, file datastore)', { skip, timeout: 5 * 60_000 }, () => {
  let lab: TestLab | undefined;
  let plain: TestLab | undefined;
  // Made in `before`: a run that filters out every test here runs no hooks.
  let dir = '';
  const nodeIps = (l: TestLab): Set<string> => new Set(l.state().nodes.flatMap((n) => n.ips).map(norm));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-encryption-'));
    // A 3 s lease: a killed agent counts as silent within seconds (the rotation refusal).
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'file', encryption: 'wireguard', leaseDurationSeconds: 3 });
    await lab.ns('x');
    await lab.pod({ namespace: 'x', name: 'a', node: 'node-1' });
    await lab.pod({ namespace: 'x', name: 'b', node: 'node-2' });
  });
  after(async () => {
    await lab?.down();
    await plain?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('each node reports its WireGuard data plane and its peer; pods get the uplink MTU less 60', async () => {
    assert.ok(lab);
    for (const n of lab.state().nodes) {
      const h = await getHealth(n.socket);
      const e = h.cluster?.encryption;
      assert.ok(e, `${n.name} reports encryption`);
      const kind = spawnSync('ip', ['-n', n.netns, '-d', '-j', 'link', 'show', 'dev', e.device], { encoding: 'utf8' });
      const info = (JSON.parse(kind.stdout) as Array<{ linkinfo?: { info_kind?: string } }>)[0]?.linkinfo?.info_kind;
      // The kernel's device where the module is there, else a TUN served by wireguard-go.
      assert.equal(e.implementation, info === 'wireguard' ? 'kernel' : 'wireguard-go');
      assert.deepEqual(e.peers.map((p) => p.node), [n.name === 'node-1' ? 'node-2' : 'node-1']);
      assert.equal(h.mtu, 1500 - 60);
    }
  });

  it('a full-size packet with DF set crosses nodes in both families; one byte more is refused at the pod', async () => {
    assert.ok(lab);
    const st = lab.state();
    const b = st.pods.find((p) => p.name === 'b')?.addresses ?? [];
    const pod = `/run/netns/${st.prefix}.p-x-a`;
    const ping = (fam: 4 | 6, size: number, count = 2): ReturnType<typeof spawnSync> => spawnSync('nsenter', [`--net=${pod}`, '--', 'ping', `-${fam}`, '-c', String(count), '-W', '2', '-M', 'do', '-s', String(size), b[fam === 4 ? 0 : 1] as string], { encoding: 'utf8' });
    // Pod MTU 1440: ICMP payload + 8 (ICMP) + 20 (IPv4) or 40 (IPv6).
    assert.equal(ping(4, 1440 - 28).status, 0, 'IPv4 at the pod MTU, DF set');
    assert.equal(ping(6, 1440 - 48).status, 0, 'IPv6 at the pod MTU');
    assert.notEqual(ping(4, 1440 - 27, 1).status, 0, 'one byte more does not leave the pod');
  });

  it('an eavesdropper on the underlay sees only UDP between the WireGuard ports: no marker, no pod address', async () => {
    assert.ok(lab);
    const l = lab;
    const file = await capture(l, dir, () => exchange(l));
    const { raw, packets } = readPcap(file);
    const nodes = nodeIps(l);
    const between = packets.filter((p) => nodes.has(p.src) && nodes.has(p.dst));
    assert.ok(between.length >= 16, `packets between the nodes were captured (${between.length} of ${packets.length}, file ${file}: ${JSON.stringify(packets.slice(0, 3))})`);
    const clear = between.filter((p) => !(p.protocol === 17 && p.srcPort === WG_PORT && p.dstPort === WG_PORT));
    assert.deepEqual(clear, [], 'every packet between the nodes is WireGuard');
    assert.deepEqual(packets.filter((p) => inPodRange(p.src) || inPodRange(p.dst)), [], 'no pod address in any IP header on the wire');
    assert.equal(raw.indexOf(MARKER), -1, 'the marker is nowhere in the capture');
    for (const p of l.state().pods) {
      const v6 = p.addresses.find((x) => x.includes(':')) as string;
      assert.equal(raw.indexOf(Buffer.from(ipaddr.parse(v6).toByteArray())), -1, `${p.name}'s IPv6 address is nowhere in the capture`);
    }
  });

  it('control: the same capture of an unencrypted lab finds the marker and pod traffic outside WireGuard', async () => {
    plain = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'file' });
    await plain.ns('x');
    await plain.pod({ namespace: 'x', name: 'a', node: 'node-1' });
    await plain.pod({ namespace: 'x', name: 'b', node: 'node-2' });
    const l = plain;
    const { raw, packets } = readPcap(await capture(l, dir, () => exchange(l)));
    assert.notEqual(raw.indexOf(MARKER), -1, 'VXLAN carries the marker in clear');
    const nodes = nodeIps(l);
    assert.ok(packets.some((p) => nodes.has(p.src) && nodes.has(p.dst) && p.dstPort === 8472), 'VXLAN packets between the nodes');
  });

  it('key rotation on each node in turn under 10 ms pings, both families: peers follow, nothing is lost', async (t) => {
    assert.ok(lab);
    const l = lab;
    const st = l.state();
    const a = st.pods.find((p) => p.name === 'a')?.addresses ?? [];
    const b = st.pods.find((p) => p.name === 'b')?.addresses ?? [];
    const stop = new AbortController();
    const pings = [pingFrom(l, 'x/a', b[0] as string, 100_000, 10, stop.signal), pingFrom(l, 'x/b', a[1] as string, 100_000, 10, stop.signal)];
    await new Promise((r) => setTimeout(r, 500));
    const followed: number[] = [];
    for (const [node, other] of [['node-1', 'node-2'], ['node-2', 'node-1']] as const) {
      const before = wgPeers(l, other);
      const key = await labNodeRotateKey(l.name, node);
      assert.ok(!before.includes(key), 'a new key');
      followed.push(await waitFor(`${other} configures ${node}'s new key`, () => wgPeers(l, other).join() === key));
      await new Promise((r) => setTimeout(r, 1000));
    }
    stop.abort();
    const [ab, ba] = await Promise.all(pings);
    // A ping still in flight when it was stopped is not a loss: the last 0.5 s are forgiven.
    t.diagnostic(`peer followed in ${followed.join(', ')} ms (polled every 10 ms); pings a -> b IPv4 ${ab?.received}/${ab?.sent}, b -> a IPv6 ${ba?.received}/${ba?.sent}`);
    for (const [what, r] of [['a -> b IPv4', ab], ['b -> a IPv6', ba]] as const) {
      assert.ok(r && r.sent > 100, `${what}: ${r?.sent} pings sent`);
      assert.deepEqual(r.lost.filter((seq) => seq < r.sent - 50), [], `${what}: pings lost during the rotations (peers followed in ${followed.join(', ')} ms)`);
    }
  });

  it('an agent killed under traffic: the tunnel stays up without it; restarted, it keeps its key and its device', async () => {
    assert.ok(lab);
    const l = lab;
    const state = l.state();
    const n = state.nodes[0];
    assert.ok(n?.agentPid);
    const keyBefore = (await getHealth(n.socket)).cluster?.encryption?.publicKey;
    const wgPid = wireguardGoPid(l, 'node-1');
    const b = state.pods.find((p) => p.name === 'b')?.addresses ?? [];
    const stop = new AbortController();
    const ping = pingFrom(l, 'x/a', b[0] as string, 100_000, 10, stop.signal);
    await new Promise((r) => setTimeout(r, 300));
    await kill9(n.agentPid);
    await new Promise((r) => setTimeout(r, 1000));
    await startNodeAgent(state, n, CLI, { leaveOnExit: true });
    saveLab(state);
    // Past the restarted agent's first reconciles, which would show a device made again.
    await new Promise((r) => setTimeout(r, 2000));
    stop.abort();
    const r = await ping;
    assert.ok(r.sent > 200);
    assert.deepEqual(r.lost.filter((seq) => seq < r.sent - 50), [], 'no ping lost while the agent was down, restarting and reconciling');
    const h = await getHealth(n.socket);
    assert.equal(h.cluster?.encryption?.publicKey, keyBefore, 'the same key after the restart');
    if (wgPid !== undefined) assert.equal(wireguardGoPid(l, 'node-1'), wgPid, 'the same wireguard-go serves the device: adopted, not made again');
  });

  it("a key rotation is refused while a peer's agent is silent, unless forced; that peer follows once its agent is back", async () => {
    assert.ok(lab);
    const l = lab;
    const state = l.state();
    const [n1, n2] = state.nodes;
    assert.ok(n1 && n2?.agentPid);
    await kill9(n2.agentPid);
    await waitFor("node-1 sees node-2's agent silent", async () => ((await getHealth(n1.socket)).cluster?.silentAgents ?? []).some((s) => s.node === 'node-2'), 20_000);
    await assert.rejects(labNodeRotateKey(l.name, 'node-1'), /refused: the agent of node-2 .*is not running/);
    const key = await labNodeRotateKey(l.name, 'node-1', true);
    await startNodeAgent(state, n2, CLI, { leaveOnExit: true });
    saveLab(state);
    await waitFor("node-2 configures node-1's new key", () => wgPeers(l, 'node-2').join() === key);
    const b = state.pods.find((p) => p.name === 'b')?.addresses ?? [];
    const ping = await pingFrom(l, 'x/a', b[0] as string, 20, 20);
    assert.equal(ping.received, 20);
  });

  it('the private keys are in their 0600 files only: not in logs, the datastore, health or lab status', async () => {
    assert.ok(lab);
    const state = lab.state();
    const secrets = state.nodes.map((n) => readFileSync(join(n.stateDir, 'wireguard.key'), 'utf8').trim());
    for (const n of state.nodes) assert.equal(statSync(join(n.stateDir, 'wireguard.key')).mode & 0o777, 0o600);
    const places: Array<[string, string]> = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && e.name !== 'wireguard.key') places.push([p, readFileSync(p, 'latin1')]);
      }
    };
    walk(state.dir); // agent logs, wireguard-go logs, the file datastore, state dirs but for the key files
    for (const n of state.nodes) places.push([`health of ${n.name}`, JSON.stringify(await getHealth(n.socket))]);
    places.push(['lab status', JSON.stringify(await labStatus(lab.name))]);
    assert.ok(places.length > 10);
    for (const [where, text] of places) for (const k of secrets) assert.equal(text.includes(k), false, `a private key in ${where}`);
  });

  it('uninstall --all on an encrypted node: the device, its wireguard-go, the unreachable routes and the key go', async () => {
    assert.ok(lab);
    const state = lab.state();
    const n = state.nodes.find((x) => x.name === 'node-2');
    assert.ok(n?.agentPid);
    await kill9(n.agentPid); // stopped as a DaemonSet's agent is before an uninstall: no leaving
    const r = spawnSync('nsenter', [`--net=/run/netns/${n.netns}`, '--', process.execPath, CLI, 'uninstall', '--all', '--cni-bin-dir', n.binDir, '--cni-conf-dir', n.confDir, '--state-dir', n.stateDir, '--socket', n.socket], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`removed link ${labWireguardDevice(n)}`));
    const links = spawnSync('ip', ['-n', n.netns, '-j', 'link', 'show'], { encoding: 'utf8' });
    assert.deepEqual((JSON.parse(links.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).filter((x) => x.startsWith('weft')), []);
    for (const fam of ['-4', '-6']) assert.equal(spawnSync('ip', ['-n', n.netns, fam, 'route', 'show', 'proto', '77'], { encoding: 'utf8' }).stdout.trim(), '');
    await waitFor('wireguard-go of node-2 ends', () => spawnSync('ip', ['netns', 'pids', n.netns], { encoding: 'utf8' }).stdout.trim() === '');
    delete n.agentPid;
    saveLab(state);
  });

  it('encryption is not turned off (or on) on a running cluster: an agent asked to is refused, saying why', async () => {
    assert.ok(lab && plain);
    const ns = `${lab.state().prefix}.refused`;
    await createNamedNetns(ns);
    try {
      for (const [l, flag] of [[lab, 'none'], [plain, 'wireguard']] as const) {
        const ds = l.state().datastore;
        assert.equal(ds.kind, 'file');
        const state = join(dir, `refused-${flag}`);
        const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, CLI, 'agent', '--datastore', 'file', '--datastore-dir', ds.kind === 'file' ? ds.dir : '', '--node-name', 'node-9', '--node-ip', '198.18.0.99', '--state-dir', state, '--socket', join(state, 'agent.sock'), '--encryption', flag], { encoding: 'utf8', timeout: 30_000 });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, new RegExp(`--encryption ${flag}, but the cluster was created with encryption ${flag === 'none' ? 'wireguard' : 'none'}: encryption is fixed`));
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      }
    } finally {
      await deleteNamedNetns(ns).catch(() => undefined);
    }
  });
});
