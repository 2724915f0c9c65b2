import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/env.js';
import { standinFixture, weftAsync } from './helpers/kube-run.js';

/**
 * `weft apply`, `weft policy trace` and `weft delete` with `--datastore kubernetes`, against the
 * Kubernetes API stand-in (test/helpers), through a kubeconfig; Debian's kubectl checks that
 * the objects really are in the API.
 */
const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: x, ports: [{name: http, containerPort: 80}]}]}
status: {phase: Running, podIPs: [{ip: 10.244.1.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {nodeName: node-2, containers: [{name: c, image: x}]}
status: {phase: Running, podIPs: [{ip: 10.244.2.7}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: shop, labels: {app: other}}
spec: {nodeName: node-2, containers: [{name: c, image: x}]}
status: {phase: Running, podIPs: [{ip: 10.244.2.8}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
`;

const weft = weftAsync;

describe('the CLI on the Kubernetes API (stand-in)', () => {
  const { dir, standin, kubeconfig, kubectl } = standinFixture('weft-kcli-');
  const file = join(dir, 'shop.yaml');
  writeFileSync(file, MANIFESTS);
  const ds = (): string[] => ['--datastore', 'kubernetes', '--kubeconfig', kubeconfig()];

  it('without Weft\'s CRDs, a message that says how to install them; with them (kubectl apply -f deploy/crds.yaml), the resources are served', async () => {
    const missing = await weft(['policy', 'trace', 'shop/a', 'shop/b', '80/TCP', ...ds()]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /install Weft's custom resources: kubectl apply -f deploy\/crds\.yaml/);
    await kubectl(['apply', '-f', join(ROOT, 'deploy', 'crds.yaml')]);
    const resources = await kubectl(['api-resources', '--api-group', 'weft.io', '-o', 'name']);
    assert.deepEqual(resources.trim().split('\n').sort(), ['clusternetworks.weft.io', 'ipblocks.weft.io', 'weftclusterpolicies.weft.io', 'weftendpoints.weft.io']);
  });

  it('apply writes the objects into the API (status through its subresource), trace judges them, delete removes them', async () => {
    const applied = await weft(['apply', '-f', file, ...ds()]);
    assert.equal(applied.code, 0, applied.stderr);
    const pods = JSON.parse(await kubectl(['get', 'pods', '-n', 'shop', '-o', 'json'])) as { items: Array<{ metadata: { name: string }; status?: { podIPs?: Array<{ ip: string }> } }> };
    assert.deepEqual(pods.items.map((p) => `${p.metadata.name} ${p.status?.podIPs?.[0]?.ip}`).sort(), ['client 10.244.2.7', 'other 10.244.2.8', 'web 10.244.1.5']);
    assert.match(await kubectl(['get', 'networkpolicies', '-n', 'shop']), /web-from-client/);

    const blocked = await weft(['policy', 'trace', 'shop/other', 'shop/web', '80/TCP', ...ds()]);
    assert.equal(blocked.code, 1, blocked.stderr);
    assert.match(blocked.stdout, /ingress to shop\/web: BLOCKED — isolated by shop\/web-from-client/);
    const allowed = await weft(['policy', 'trace', 'shop/client', 'shop/web', '80/TCP', ...ds()]);
    assert.equal(allowed.code, 0, allowed.stderr);

    const again = await weft(['apply', '-f', file, ...ds()]);
    assert.equal(again.code, 0, again.stderr);
    const deleted = await weft(['delete', '-f', file, ...ds()]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.doesNotMatch(await kubectl(['get', 'namespaces', '-o', 'name']), /namespace\/shop/);
  });

  it('a kubeconfig that logs in through an exec plugin, and an API that refuses the token, are messages, not stack traces', async () => {
    const exec = join(dir, 'exec.yaml');
    writeFileSync(exec, `apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: '${standin().url}'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n`);
    const r = await weft(['apply', '-f', file, '--datastore', 'kubernetes', '--kubeconfig', exec]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /exec plugin, which weft does not run: give it a token/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const bad = join(dir, 'bad-token.yaml');
    writeFileSync(bad, (await kubectl(['config', 'view', '--raw'])).replace(/token: .*/, 'token: wrong'));
    const refused = await weft(['apply', '-f', file, '--datastore', 'kubernetes', '--kubeconfig', bad]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /refused this identity: check the token/);
    assert.doesNotMatch(refused.stderr, /\n\s+at /);
  });
});
