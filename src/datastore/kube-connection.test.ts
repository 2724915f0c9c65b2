import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { findKubeConnection, inClusterConnection, kubeconfigConnection } from './kube-connection.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-kubeconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://10.0.0.1:6443', 'certificate-authority-data': Buffer.from('CA PEM').toString('base64') }): string {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'main',
    contexts: [{ name: 'other', context: { cluster: 'nope', user: 'nope' } }, { name: 'main', context: { cluster: 'c1', user: 'u1' } }],
    clusters: [{ name: 'c1', cluster }],
    users: [{ name: 'u1', user }],
  }));
  return file;
}

describe('kubeconfig and in-cluster connections', () => {
  it('takes the current context: server, inline CA, token', () => {
    const c = kubeconfigConnection(kubeconfig({ token: 'abc' }));
    assert.equal(c.server, 'https://10.0.0.1:6443');
    assert.equal(c.ca, 'CA PEM');
    assert.equal(c.token, 'abc');
    assert.match(c.source, /^kubeconfig /);
  });

  it('reads client certificates and CA files relative to the kubeconfig, and a token file', () => {
    writeFileSync(join(dir, 'client.crt'), 'CERT');
    writeFileSync(join(dir, 'client.key'), 'KEY');
    writeFileSync(join(dir, 'ca.crt'), 'CA FILE');
    const c = kubeconfigConnection(kubeconfig({ 'client-certificate': 'client.crt', 'client-key': join(dir, 'client.key'), tokenFile: 'tok' }, { server: 'https://api.example:443/', 'certificate-authority': 'ca.crt' }));
    assert.deepEqual([c.server, c.ca, c.clientCert, c.clientKey, c.tokenFile], ['https://api.example:443', 'CA FILE', 'CERT', 'KEY', join(dir, 'tok')]);
  });

  it('refuses exec plugins and auth providers, a missing cluster, a server that is not a URL — each saying what is accepted', () => {
    assert.throws(() => kubeconfigConnection(kubeconfig({ exec: { command: 'aws' } })), /exec plugin, which weft does not run: give it a token .* or a client certificate/);
    assert.throws(() => kubeconfigConnection(kubeconfig({ 'auth-provider': { name: 'gcp' } })), /auth provider/);
    assert.throws(() => kubeconfigConnection(kubeconfig({ token: 't' }, { server: 'ftp://x' })), /no usable server \(expected https:\/\/HOST:PORT/);
    assert.equal(kubeconfigConnection(kubeconfig({ token: 't' }, { server: 'unix:///run/weft/labs/x/kube-api.sock' })).server, 'unix:///run/weft/labs/x/kube-api.sock', "the lab's stand-in: a unix socket");
    const f = join(dir, 'broken');
    writeFileSync(f, 'current-context: main\ncontexts: []\n');
    assert.throws(() => kubeconfigConnection(f), /no context named "main"/);
    assert.throws(() => kubeconfigConnection(join(dir, 'absent')), /cannot be read/);
  });

  it('in a pod: the service account, the API at KUBERNETES_SERVICE_HOST (IPv6 bracketed)', () => {
    const sa = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(sa, 'ca.crt'), 'SA CA');
    const c = inClusterConnection({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa);
    assert.deepEqual([c?.server, c?.ca, c?.tokenFile], ['https://[fd00::1]:443', 'SA CA', join(sa, 'token')]);
    assert.equal(inClusterConnection({}, sa), undefined);
  });

  it('--kubeconfig first, then KUBECONFIG; nothing at all is a message naming both ways', () => {
    const a = kubeconfig({ token: 'from-flag' });
    const b = kubeconfig({ token: 'from-env' });
    assert.equal(findKubeConnection(a, { KUBECONFIG: b }).token, 'from-flag');
    assert.equal(findKubeConnection(undefined, { KUBECONFIG: `${b}:${a}` }).token, 'from-env');
    assert.throws(() => findKubeConnection(undefined, { HOME: dir }), /give --kubeconfig FILE \(or KUBECONFIG\), or run in a pod/);
  });
});
