import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { privilegedSkip } from '../helpers/env.js';
import { BUSYBOX_IMAGE, PAGE, buildBusyboxArchive } from '../helpers/image.js';
import { nodeLeftovers, startTestNode, stateLeftovers, type TestNode } from '../helpers/node.js';
import { agentSees, missingBinaries, nodeIsSealed, podmanConf } from '../helpers/runtimes.js';

/**
 * podman 4.3 with its CNI network backend, pointed at Weft the way the README tells operators:
 * a containers.conf naming Weft's plugin and conf dirs. Private storage; run inside the node netns.
 */
const skip = privilegedSkip() ?? missingBinaries(['podman', 'runc', 'conmon']);


/**
 * Twice: as on a usual node, and with the agent in a private mount namespace (as an agent in a
 * container is), where podman's netns mounts, made after the agent started, are not visible: the
 * agent reaches them through the forwarder's open file.
 */
const setups = [
  { title: '', agentMountNamespace: undefined },
  { title: ' (agent in a private mount namespace)', agentMountNamespace: 'private' as const },
];

for (const setup of setups) describe(`podman (CNI backend)${setup.title}`, { skip }, () => {
  let node: TestNode;
  let dir: string;

  const podman = (args: string[], timeout = 120_000) =>
    spawnSync('nsenter', [`--net=${node.sb.nodeNetnsPath}`, '--', 'podman', '--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', ...args], {
      encoding: 'utf8',
      timeout,
      env: { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') },
    });

  before(async () => {
    node = await startTestNode(setup.agentMountNamespace ? { agentMountNamespace: setup.agentMountNamespace } : {});
    dir = join(node.sb.dir, 'podman');
    mkdirSync(join(dir, 'image'), { recursive: true });
    writeFileSync(join(dir, 'containers.conf'), podmanConf(node.sb.binDir, node.sb.confDir, dir));
    const load = podman(['load', '-i', buildBusyboxArchive(join(dir, 'image'))]);
    assert.equal(load.status, 0, load.stderr);
  });
  after(async () => {
    if (dir) podman(['rm', '--all', '--force', '--time', '0']);
    await node?.stop();
  });

  it('podman sees the weft network; containers get weft addresses, reach each other; stop DELs and frees', async () => {
    const nets = podman(['network', 'ls', '--format', '{{.Name}} {{.Driver}}']);
    assert.match(nets.stdout, new RegExp(`^${node.list.name} weft$`, 'm'));

    const run = podman(['run', '-d', '--name', 'web', '--network', node.list.name, BUSYBOX_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    assert.equal(run.status, 0, run.stderr);
    const inspect = podman(['inspect', 'web', '--format', `{{(index .NetworkSettings.Networks "${node.list.name}").IPAddress}} {{(index .NetworkSettings.Networks "${node.list.name}").GlobalIPv6Address}}`]);
    const [v4, v6] = inspect.stdout.trim().split(' ');
    assert.match(v4 ?? '', /^10\.244\.7\.\d+$/);
    assert.match(v6 ?? '', /^fd00:244:7::[0-9a-f]+$/);
    assert.deepEqual(nodeIsSealed(node), []);
    if (setup.agentMountNamespace) {
      const key = podman(['inspect', 'web', '--format', '{{.NetworkSettings.SandboxKey}}']).stdout.trim();
      assert.match(key, /^\//);
      assert.equal(agentSees(node, node.sb.nodeNetnsPath), 'nsfs', 'the agent sees netns mounted before it started');
      assert.notEqual(agentSees(node, key), 'nsfs', `the agent cannot see the netns ${key} by its path`);
    }

    const client = podman(['run', '--rm', '--network', node.list.name, BUSYBOX_IMAGE, 'sh', '-c', `wget -q -O - http://${v4}/ && wget -q -O - http://[${v6}]/`]);
    assert.equal(client.status, 0, client.stderr);
    assert.equal(client.stdout.split(PAGE).length - 1, 2);
    assert.equal((await stateLeftovers(node)).reservations.length, 2, "the client's DEL freed its addresses");

    assert.equal(podman(['stop', '--time', '0', 'web']).status, 0);
    assert.deepEqual(await stateLeftovers(node), { reservations: [], records: [] }, 'stop sent DEL');
    assert.equal(podman(['rm', 'web']).status, 0);
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
  });
});
