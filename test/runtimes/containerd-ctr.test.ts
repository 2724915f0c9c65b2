import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, privilegedSkip } from '../helpers/env.js';
import { ctr, startContainerd, stopContainerd, type Containerd } from '../helpers/containerd.js';
import { BUSYBOX_IMAGE, PAGE, buildBusyboxArchive } from '../helpers/image.js';
import { nodeLeftovers, startTestNode, stateLeftovers, type TestNode } from '../helpers/node.js';
import { missingBinaries, nodeIsSealed, running, startLongRunning, waitExit, waitForAttachment } from '../helpers/runtimes.js';

/**
 * containerd (Debian's, private instance) running containers whose networking `ctr run --cni`
 * sets up by calling Weft, with the exact exec protocol go-cni uses. ctr reads only
 * /etc/cni/net.d and /opt/cni/bin, so it runs in a private mount namespace with our dirs there.
 */
const skip = privilegedSkip() ?? missingBinaries(['containerd', 'ctr', 'runc', 'unshare']);

describe('containerd: ctr run --cni', { skip }, () => {
  let node: TestNode;
  let cd: Containerd | undefined;
  let web: ChildProcess | undefined;

  before(async () => {
    node = await startTestNode();
    mkdirSync(join(node.sb.dir, 'image'));
    const tarball = buildBusyboxArchive(join(node.sb.dir, 'image'));
    cd = await startContainerd({ dir: join(node.sb.dir, 'containerd'), nodeNetnsPath: node.sb.nodeNetnsPath, cniBinDir: node.sb.binDir, cniConfDir: node.sb.confDir });
    const imp = ctr(cd, ['-n', 'default', 'image', 'import', tarball]);
    assert.equal(imp.status, 0, imp.stderr);
  });
  after(async () => {
    if (cd && running(web)) ctr(cd, ['-n', 'default', 'task', 'kill', '-s', 'SIGKILL', 'web']);
    if (web) await waitExit(web).catch(() => web?.kill('SIGKILL'));
    await stopContainerd(cd);
    await node?.stop();
  });

  /** `ctr run --cni --rm` inside the node netns and a private mount namespace. */
  function ctrRunArgs(id: string, cmd: string[]): [string, string[]] {
    if (!cd) throw new Error('containerd not started');
    return [
      'nsenter',
      [
        `--net=${node.sb.nodeNetnsPath}`,
        '--',
        'unshare',
        '--mount',
        '--propagation',
        'private',
        '--',
        process.execPath,
        join(ROOT, 'build', 'test', 'helpers', 'with-cni-dirs.js'),
        node.sb.binDir,
        node.sb.confDir,
        '--',
        'ctr',
        '--address',
        cd.socket,
        '-n',
        'default',
        'run',
        '--cni',
        '--rm',
        BUSYBOX_IMAGE,
        id,
        ...cmd,
      ],
    ];
  }

  it('each container gets a weft address (v4 and v6), two containers reach each other, deleting them DELs and frees the addresses', async () => {
    web = startLongRunning(...ctrRunArgs('web', ['httpd', '-f', '-p', '80', '-h', '/www']));
    const a = await waitForAttachment(node, 'default-web');
    const [v4, v6] = a.addresses;
    assert.match(v4 ?? '', /^10\.244\.7\.\d+$/);
    assert.match(v6 ?? '', /^fd00:244:7::[0-9a-f]+$/);
    assert.deepEqual(nodeIsSealed(node), [], 'the node netns has no way out');

    const client = spawnSync(...ctrRunArgs('client', ['sh', '-c', `ip -o addr show eth0; wget -q -O - http://${v4}/ && wget -q -O - http://[${v6}]/ && ping -c 1 -W 2 ${v4}`]), { encoding: 'utf8', timeout: 60_000 });
    assert.equal(client.status, 0, client.stderr + client.stdout);
    assert.equal(client.stdout.split(PAGE).length - 1, 2, `the client fetched the page over IPv4 and IPv6: ${client.stdout}`);
    assert.match(client.stdout, /inet 10\.244\.7\.\d+\/32/, 'the client has a weft address too');
    assert.match(client.stdout, /1 packets received/);
    // The client's ctr process exited: it sent DEL (with an empty CNI_NETNS) and the address is free.
    assert.equal((await stateLeftovers(node)).reservations.length, 2, 'only web holds addresses');

    assert.equal(ctr(cd as Containerd, ['-n', 'default', 'task', 'kill', '-s', 'SIGKILL', 'web']).status, 0);
    await waitExit(web);
    assert.deepEqual(await stateLeftovers(node), { reservations: [], records: [] });
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
  });
});
