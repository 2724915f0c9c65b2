import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCniArgs } from './args.js';
import { CniError } from './errors.js';

describe('parseCniArgs', () => {
  it('reads the Kubernetes keys', () => {
    const a = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=t1;K8S_POD_UID=u1');
    assert.equal(a.podNamespace, 'default');
    assert.equal(a.podName, 'web-0');
    assert.equal(a.podUid, 'u1');
    assert.equal(a.podInfraContainerId, 't1');
  });

  it('reads requested IPs and MAC', () => {
    const a = parseCniArgs('IP=10.1.2.3,fd00::3;MAC=02:00:00:00:00:01');
    assert.deepEqual(a.ips, ['10.1.2.3', 'fd00::3']);
    assert.equal(a.mac, '02:00:00:00:00:01');
  });

  it('is empty for an empty string and tolerates a trailing ";"', () => {
    assert.deepEqual(parseCniArgs('').ips, []);
    assert.equal(parseCniArgs('K8S_POD_NAME=a;').podName, 'a');
  });

  it('rejects a pair without exactly one "=" with code 4', () => {
    for (const bad of ['novalue', 'a=b=c', '=x']) {
      assert.throws(() => parseCniArgs(bad), (e: unknown) => e instanceof CniError && e.code === 4 && e.message.includes('invalid pair'));
    }
  });

  it('rejects unknown keys unless IgnoreUnknown is 1 or true', () => {
    assert.throws(() => parseCniArgs('FOO=bar'), (e: unknown) => e instanceof CniError && e.code === 4 && e.message === 'CNI_ARGS: unknown args ["FOO=bar"]');
    assert.equal(parseCniArgs('IgnoreUnknown=1;FOO=bar').raw['FOO'], 'bar');
    assert.equal(parseCniArgs('IgnoreUnknown=true;FOO=bar').raw['FOO'], 'bar');
  });

  it('a pod identity is Kubernetes names or nothing: "..", "/", newlines, podman\'s container names are not used', () => {
    for (const bad of ['K8S_POD_NAME=..', 'K8S_POD_NAME=../../x', 'K8S_POD_NAMESPACE=a/b', 'K8S_POD_NAMESPACE=Web', 'K8S_POD_NAME=a\nb', 'K8S_POD_NAME=eager_turing', `K8S_POD_NAMESPACE=${'a'.repeat(64)}`]) {
      const a = parseCniArgs(`IgnoreUnknown=1;${bad}`);
      assert.equal(a.podName, undefined, bad);
      assert.equal(a.podNamespace, undefined, bad);
    }
    assert.equal(parseCniArgs('IgnoreUnknown=1;K8S_POD_UID=a b').podUid, undefined);
    const ok = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-x7z.a;K8S_POD_UID=3f2c8e0e-1b7a-4c3e-9d1a-0a1b2c3d4e5f');
    assert.equal(ok.podName, 'coredns-5d78c9869d-x7z.a');
    assert.equal(ok.podNamespace, 'kube-system');
  });
});
