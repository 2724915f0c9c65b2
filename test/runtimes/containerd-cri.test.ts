import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { privilegedSkip } from '../helpers/env.js';
import { ctr, startContainerd, stopContainerd, type Containerd } from '../helpers/containerd.js';
import { CriClient, sandboxNetnsPath } from '../helpers/cri.js';
import { buildBusyboxArchive } from '../helpers/image.js';
import { nodeLeftovers, startTestNode, stateLeftovers, type TestNode } from '../helpers/node.js';
import { agentSees, attachments, missingBinaries, nodeIsSealed } from '../helpers/runtimes.js';

/**
 * containerd's CRI plugin — the path kubelet uses — driven over its socket with the runtime.v1
 * sandbox calls. The CRI sends K8S_POD_NAMESPACE/K8S_POD_NAME/… in CNI_ARGS, Go-cased capability
 * arguments, DEL with an empty CNI_NETNS on repeated stops, and runs its own loopback plugin
 * from the same bin dir. Chained portmap shows our result working as a real runtime's prevResult.
 */
const skip = privilegedSkip() ?? missingBinaries(['containerd', 'ctr', 'runc', 'iptables-save']);

/**
 * Twice: as on a usual node, and with the agent where a containerised agent is — a mount namespace
 * of its own (`ip netns exec`) — while containerd keeps the pod netns under its state dir, mounted
 * after the agent started: the agent cannot see them by path and reaches them through the
 * forwarder's open file.
 */
const setups = [
  { title: '', agentMountNamespace: undefined, netnsUnderStateDir: false },
  // containerd's own mounts are private, so the agent cannot see them on any host.
  { title: ' (agent under `ip netns exec`, netns under the state dir)', agentMountNamespace: 'ip-netns-exec' as const, netnsUnderStateDir: true },
];

for (const setup of setups) describe(`containerd CRI: RunPodSandbox / PodSandboxStatus / StopPodSandbox / RemovePodSandbox${setup.title}`, { skip }, () => {
  let node: TestNode;
  let cd: Containerd | undefined;
  let cri: CriClient | undefined;

  before(async () => {
    node = await startTestNode({ chain: ['portmap'], ...(setup.agentMountNamespace ? { agentMountNamespace: setup.agentMountNamespace } : {}) });
    // containerd's CRI takes one bin dir: the loopback and portmap plugins must be in ours.
    for (const p of ['loopback', 'portmap']) symlinkSync(`/usr/lib/cni/${p}`, join(node.sb.binDir, p));
    mkdirSync(join(node.sb.dir, 'image'));
    const tarball = buildBusyboxArchive(join(node.sb.dir, 'image'));
    cd = await startContainerd({ dir: join(node.sb.dir, 'containerd'), nodeNetnsPath: node.sb.nodeNetnsPath, cniBinDir: node.sb.binDir, cniConfDir: node.sb.confDir, netnsUnderStateDir: setup.netnsUnderStateDir, privateMounts: setup.netnsUnderStateDir });
    assert.equal(ctr(cd, ['-n', 'k8s.io', 'image', 'import', tarball]).status, 0);
    cri = new CriClient(cd.socket);
  });
  after(async () => {
    cri?.close();
    await stopContainerd(cd);
    await node?.stop();
  });

  it('sandboxes get weft addresses from the K8S_* CNI_ARGS, reach each other, and stop/remove free them', async () => {
    const c = cri as CriClient;
    assert.equal((await c.version()).runtime_name, 'containerd');
    const web = await c.runPodSandbox({ name: 'web', namespace: 'prod', uid: 'uid-web', portMappings: [{ protocol: 'TCP', container_port: 80, host_port: 8080 }] });
    const db = await c.runPodSandbox({ name: 'db', namespace: 'prod', uid: 'uid-db' });
    const sWeb = await c.status(web, true);
    const sDb = await c.status(db, true);
    for (const s of [sWeb, sDb]) {
      assert.equal(s.status.state, 'SANDBOX_READY');
      assert.match(s.status.network?.ip ?? '', /^10\.244\.7\.\d+$/);
      assert.match(s.status.network?.additional_ips[0]?.ip ?? '', /^fd00:244:7::[0-9a-f]+$/);
    }
    // The agent knows which pod each attachment is, from CNI_ARGS.
    const recs = await attachments(node);
    const byName = new Map(recs.map((r) => [r.pod?.name, r]));
    assert.deepEqual(byName.get('web')?.pod, { namespace: 'prod', name: 'web', uid: 'uid-web' });
    assert.deepEqual(byName.get('web')?.addresses, [sWeb.status.network?.ip, sWeb.status.network?.additional_ips[0]?.ip]);
    assert.deepEqual(nodeIsSealed(node), []);

    // Reachability between the two sandboxes' netns, both families.
    const named = sandboxNetnsPath(sWeb.info);
    assert.ok(named, 'verbose status names the sandbox netns');
    // The path as containerd sees it (its mount namespace may be its own).
    const webNs = `/proc/${cd?.proc.pid ?? 0}/root${named ?? ''}`;
    if (setup.netnsUnderStateDir) {
      assert.ok(named?.startsWith(join(cd?.dir ?? '?', 'state')), `the netns is under the state dir: ${named ?? ''}`);
      assert.equal(agentSees(node, node.sb.nodeNetnsPath), 'nsfs', 'the agent sees netns mounted before it started');
      assert.notEqual(agentSees(node, named ?? ''), 'nsfs', 'the agent cannot see the pod netns by its path');
    }
    const dbIps: string[] = [sDb.status.network?.ip ?? '', sDb.status.network?.additional_ips[0]?.ip ?? ''];
    for (const ip of dbIps) {
      const r: SpawnSyncReturns<string> = spawnSync('nsenter', [`--net=${webNs ?? ''}`, '--', 'ping', '-c', '1', '-W', '2', ip], { encoding: 'utf8' });
      assert.equal(r.status, 0, `web -> db ${ip}: ${r.stdout}`);
    }
    // containerd's Go-cased portMappings reached portmap, chained after weft.
    const nat = execFileSync('ip', ['netns', 'exec', node.sb.nodeNetns, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' });
    assert.match(nat, new RegExp(`--dport 8080 -j DNAT --to-destination ${(sWeb.status.network?.ip ?? '').replace(/\./g, '\\.')}:80`));

    await c.stop(web);
    assert.equal((await stateLeftovers(node)).reservations.length, 2, "stop freed web's addresses");
    await c.stop(web); // kubelet stops more than once; the CRI then DELs with an empty netns
    await c.remove(web);
    await c.stop(db);
    await c.remove(db);
    assert.deepEqual(await stateLeftovers(node), { reservations: [], records: [] });
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
    assert.doesNotMatch(execFileSync('ip', ['netns', 'exec', node.sb.nodeNetns, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' }), /--dport 8080 -j DNAT/);
  });
});
