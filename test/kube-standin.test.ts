/**
 * The Kubernetes API server stand-in (test/helpers/kube-apiserver-standin.ts) driven by the real
 * clients the datastore tests will use: @kubernetes/client-node (typed APIs, KubernetesObjectApi
 * for a CRD-defined kind, Watch) and kubectl (apply/get/delete through its own discovery and
 * OpenAPI). Each test asserts what the real kube-apiserver would answer. One stand-in serves the
 * whole file; its temp dirs and sockets go in `after`, which runs even when a test fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { KubeApiStandin } from './helpers/kube-apiserver-standin.js';

const KUBECTL = '/usr/bin/kubectl';
const kubectlMissing = existsSync(KUBECTL) ? undefined : `${KUBECTL} is missing (scripts/setup.sh installs kubectl)`;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field(o: unknown, ...path: string[]): unknown {
  let cur = o;
  for (const p of path) cur = isObj(cur) ? cur[p] : undefined;
  return cur;
}

/** The status code and metav1.Status body of a client-node call that must fail. */
async function apiFailure(p: Promise<unknown>): Promise<{ code: number; status: Obj; headers: Record<string, string> }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof k8s.ApiException) {
      const body: unknown = e.body;
      const parsed: unknown = typeof body === 'string' ? JSON.parse(body) : body;
      return { code: e.code, status: isObj(parsed) ? parsed : {}, headers: e.headers };
    }
    throw e;
  }
  return assert.fail('the call succeeded; it should have failed');
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: unknown;
}

/** A plain HTTPS request trusting only the stand-in's certificate. */
function raw(s: KubeApiStandin, method: string, path: string, o: { token?: string | null; body?: unknown; contentType?: string; ca?: string | null } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = o.token === undefined ? s.token : o.token;
    if (token !== null) headers['Authorization'] = `Bearer ${token}`;
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    if (payload !== undefined) {
      headers['Content-Type'] = o.contentType ?? 'application/json';
      // Node sends a DELETE's body unframed unless told its length.
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const ca = o.ca === undefined ? s.caPem : o.ca ?? undefined;
    const req = httpsRequest(new URL(path, s.url), { method, headers, ca, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.end(payload);
  });
}

interface Seen {
  type: string;
  object: Obj;
}

/** Collects one client-node watch's events and its end. */
class Recorder {
  readonly events: Seen[] = [];
  ended = false;
  endError: unknown = undefined;
  controller: AbortController | undefined;
  private wake: (() => void) | undefined;

  async start(kc: k8s.KubeConfig, path: string, params: Record<string, string | number | boolean | undefined>): Promise<this> {
    this.controller = await new k8s.Watch(kc).watch(
      path,
      params,
      (type: string, object: unknown) => {
        this.events.push({ type, object: isObj(object) ? object : {} });
        this.wake?.();
      },
      (err: unknown) => {
        this.ended = true;
        this.endError = err;
        this.wake?.();
      },
    );
    return this;
  }

  changes(): Seen[] {
    return this.events.filter((e) => e.type !== 'BOOKMARK');
  }

  async until(what: string, done: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}; events so far: ${JSON.stringify(this.events.map((e) => [e.type, field(e.object, 'metadata', 'name')]))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  stop(): void {
    this.controller?.abort();
  }
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000, env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Kubernetes API server stand-in, driven by client-node and kubectl', () => {
  let s: KubeApiStandin;
  let dir: string;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let kubeconfig: string;

  const kubectl = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    // Its own HOME and discovery cache: nothing of the machine's ~/.kube is read or written.
    run(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), ...args], { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-kube-standin-test-'));
    s = await KubeApiStandin.start();
    kubeconfig = s.writeKubeconfig(dir);
    kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    core = kc.makeApiClient(k8s.CoreV1Api);
  });

  after(async () => {
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves TLS with its own certificate, wants the bearer token, and answers 401 as a Status without it', async () => {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(s.caPem ?? '', /-----BEGIN CERTIFICATE-----/);
    const list = await core.listNamespace();
    assert.deepEqual(list.items.map((n) => n.metadata?.name), ['default', 'kube-node-lease', 'kube-public', 'kube-system']);
    assert.equal(list.items[0]?.status?.phase, 'Active');

    const anonymous = await raw(s, 'GET', '/api/v1/namespaces', { token: null });
    assert.equal(anonymous.status, 401);
    assert.deepEqual(anonymous.json, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    const wrong = await raw(s, 'GET', '/api/v1/namespaces', { token: 'not-the-token' });
    assert.equal(wrong.status, 401);
    const last = s.requests.slice(-2);
    assert.deepEqual(last.map((r) => [r.method, r.path, r.status]), [['GET', '/api/v1/namespaces', 401], ['GET', '/api/v1/namespaces', 401]]);
    // Without the stand-in's CA the certificate does not verify: real TLS, not plain HTTP.
    await assert.rejects(raw(s, 'GET', '/version', { ca: null }), /self[- ]signed|unable to verify/i);

    // And without TLS, for tests that want plain HTTP: same API, no CA in the kubeconfig.
    const plain = await KubeApiStandin.start({ tls: false, token: 'plain-token' });
    const plainDir = mkdtempSync(join(tmpdir(), 'weft-kube-standin-plain-'));
    try {
      assert.match(plain.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(plain.caPem, undefined);
      const pkc = new k8s.KubeConfig();
      pkc.loadFromFile(plain.writeKubeconfig(plainDir));
      assert.equal(pkc.getCurrentCluster()?.caData, undefined);
      const v = await pkc.makeApiClient(k8s.VersionApi).getCode();
      assert.equal(v.gitVersion, 'v1.30.0');
      assert.deepEqual(plain.requests.map((r) => [r.method, r.path, r.status]), [['GET', '/version', 200]]);
    } finally {
      await plain.stop();
      rmSync(plainDir, { recursive: true, force: true });
    }
  });

  it('creates, gets and lists pods with label and field selectors; list items carry no kind', async () => {
    const pod = (name: string, labels: Record<string, string>, nodeName: string): k8s.V1Pod => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels },
      spec: { nodeName, containers: [{ name: 'c', image: 'busybox' }] },
    });
    const a = await core.createNamespacedPod({ namespace: 'default', body: pod('web-1', { app: 'web', tier: 'front' }, 'n1') });
    await core.createNamespacedPod({ namespace: 'default', body: pod('web-2', { app: 'web', tier: 'back' }, 'n2') });
    await core.createNamespacedPod({ namespace: 'default', body: pod('db-1', { app: 'db', canary: 'yes' }, 'n1') });
    assert.match(a.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(a.metadata?.resourceVersion, String(s.revision() - 2));
    assert.equal(a.metadata?.generation, 1);
    assert.equal(a.metadata?.namespace, 'default');
    assert.equal(a.status?.phase, 'Pending');
    assert.equal(a.status?.qosClass, 'BestEffort');

    const got = await core.readNamespacedPod({ name: 'web-1', namespace: 'default' });
    assert.equal(got.metadata?.uid, a.metadata?.uid);
    assert.equal(got.spec?.nodeName, 'n1');

    const names = async (q: { labelSelector?: string; fieldSelector?: string }): Promise<string[]> =>
      (await core.listNamespacedPod({ namespace: 'default', ...q })).items.map((p) => p.metadata?.name ?? '');
    assert.deepEqual(await names({ labelSelector: 'app=web' }), ['web-1', 'web-2']);
    assert.deepEqual(await names({ labelSelector: 'app==web,tier!=front' }), ['web-2']);
    assert.deepEqual(await names({ labelSelector: 'app in (web, db),!canary' }), ['web-1', 'web-2']);
    assert.deepEqual(await names({ labelSelector: 'tier notin (front)' }), ['db-1', 'web-2']);
    assert.deepEqual(await names({ labelSelector: 'canary' }), ['db-1']);
    assert.deepEqual(await names({ fieldSelector: 'spec.nodeName=n1' }), ['db-1', 'web-1']);
    assert.deepEqual(await names({ fieldSelector: 'spec.nodeName=n1,metadata.name!=db-1', labelSelector: 'app' }), ['web-1']);
    const everywhere = await core.listPodForAllNamespaces({ fieldSelector: 'metadata.namespace=default' });
    assert.equal(everywhere.items.length, 3);

    const rawList = await raw(s, 'GET', '/api/v1/namespaces/default/pods?labelSelector=app%3Dweb');
    assert.equal(field(rawList.json, 'kind'), 'PodList');
    assert.equal(field(rawList.json, 'apiVersion'), 'v1');
    assert.equal(field(rawList.json, 'metadata', 'resourceVersion'), String(s.revision()));
    const items = field(rawList.json, 'items');
    assert.ok(Array.isArray(items) && items.length === 2);
    for (const item of items) {
      assert.equal(field(item, 'kind'), undefined, 'list items carry no kind, as in the real JSON');
      assert.equal(field(item, 'apiVersion'), undefined);
    }

    const bad = await apiFailure(core.listNamespacedPod({ namespace: 'default', fieldSelector: 'spec.bogus=1' }));
    assert.equal(bad.code, 400);
    assert.equal(bad.status['message'], 'field label not supported: spec.bogus');

    const noNs = await apiFailure(core.createNamespacedPod({ namespace: 'nope', body: pod('x', {}, 'n1') }));
    assert.equal(noNs.code, 404);
    assert.equal(noNs.status['message'], 'namespaces "nope" not found');
    assert.deepEqual(noNs.status['details'], { name: 'nope', kind: 'namespaces' });

    const badName = await apiFailure(core.createNamespacedPod({ namespace: 'default', body: pod('Bad_Name', {}, 'n1') }));
    assert.equal(badName.code, 422);
    assert.equal(badName.status['reason'], 'Invalid');
    assert.match(String(badName.status['message']), /^Pod "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
    assert.equal(field(badName.status, 'details', 'kind'), 'Pod');
    const causes = field(badName.status, 'details', 'causes');
    assert.ok(Array.isArray(causes));
    assert.equal(field(causes[0], 'field'), 'metadata.name');

    const wrongNs = await apiFailure(core.createNamespacedPod({ namespace: 'default', body: { ...pod('y', {}, 'n1'), metadata: { name: 'y', namespace: 'kube-system' } } }));
    assert.equal(wrongNs.code, 400);
    assert.equal(wrongNs.status['message'], 'the namespace of the provided object does not match the namespace sent on the request');

    const generated = await core.createNamespacedPod({ namespace: 'default', body: { ...pod('', {}, 'n3'), metadata: { generateName: 'gen-' } } });
    assert.match(generated.metadata?.name ?? '', /^gen-[a-z0-9]{5}$/);
  });

  it('answers 409 AlreadyExists and, for a stale resourceVersion, 409 Conflict in the real words', async () => {
    const body: k8s.V1ConfigMap = { metadata: { name: 'cfg' }, data: { a: '1' } };
    const created = await core.createNamespacedConfigMap({ namespace: 'default', body });
    const exists = await apiFailure(core.createNamespacedConfigMap({ namespace: 'default', body }));
    assert.equal(exists.code, 409);
    assert.equal(exists.status['reason'], 'AlreadyExists');
    assert.equal(exists.status['message'], 'configmaps "cfg" already exists');
    assert.deepEqual(exists.status['details'], { name: 'cfg', kind: 'configmaps' });

    const updated = await core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { ...created, data: { a: '2' } } });
    assert.equal(updated.metadata?.resourceVersion, String(s.revision()));
    assert.ok(Number(updated.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion));
    assert.equal(updated.metadata?.uid, created.metadata?.uid);

    const stale = await apiFailure(core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { ...created, data: { a: '3' } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.status['reason'], 'Conflict');
    assert.equal(stale.status['message'], 'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; please apply your changes to the latest version and try again');

    // Without a resourceVersion an update is unconditional; one that changes nothing writes nothing.
    const unconditional = await core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { metadata: { name: 'cfg' }, data: { a: '4' } } });
    assert.equal(unconditional.data?.['a'], '4');
    const rev = s.revision();
    const same = await core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { metadata: { name: 'cfg' }, data: { a: '4' } } });
    assert.equal(same.metadata?.resourceVersion, unconditional.metadata?.resourceVersion);
    assert.equal(s.revision(), rev);

    const missing = await apiFailure(core.replaceNamespacedConfigMap({ name: 'ghost', namespace: 'default', body: { metadata: { name: 'ghost' } } }));
    assert.equal(missing.code, 404);
    assert.equal(missing.status['message'], 'configmaps "ghost" not found');
  });

  it('applies merge and JSON patches, a patched resourceVersion being a precondition', async () => {
    const cm = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'patched', labels: { keep: 'yes' } }, data: { a: '1', b: '2' } } });
    const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    const merged = await core.patchNamespacedConfigMap({ name: 'patched', namespace: 'default', body: { data: { a: null, c: '3' }, metadata: { labels: { added: 'x' } } } }, merge);
    assert.deepEqual(merged.data, { b: '2', c: '3' });
    assert.deepEqual(merged.metadata?.labels, { keep: 'yes', added: 'x' });

    // client-node's default patch type is a JSON patch (RFC 6902).
    const jsonPatched = await core.patchNamespacedConfigMap({
      name: 'patched',
      namespace: 'default',
      body: [
        { op: 'test', path: '/data/b', value: '2' },
        { op: 'replace', path: '/data/b', value: 'two' },
        { op: 'remove', path: '/metadata/labels/added' },
        { op: 'add', path: '/data/d~1e', value: '4' },
      ],
    });
    assert.deepEqual(jsonPatched.data, { b: 'two', c: '3', 'd/e': '4' });
    assert.deepEqual(jsonPatched.metadata?.labels, { keep: 'yes' });
    assert.equal(jsonPatched.metadata?.resourceVersion, String(s.revision()));

    const failedTest = await apiFailure(core.patchNamespacedConfigMap({ name: 'patched', namespace: 'default', body: [{ op: 'test', path: '/data/b', value: '2' }] }));
    assert.equal(failedTest.code, 422);

    const stale = await apiFailure(core.patchNamespacedConfigMap({ name: 'patched', namespace: 'default', body: { metadata: { resourceVersion: cm.metadata?.resourceVersion }, data: { z: '1' } } }, merge));
    assert.equal(stale.code, 409);
    assert.equal(stale.status['reason'], 'Conflict');
    const fresh = await core.patchNamespacedConfigMap({ name: 'patched', namespace: 'default', body: { metadata: { resourceVersion: jsonPatched.metadata?.resourceVersion }, data: { z: '1' } } }, merge);
    assert.equal(fresh.data?.['z'], '1');

    const strategic = await core.patchNamespacedConfigMap(
      { name: 'patched', namespace: 'default', body: { data: { z: null, s: 'smp' }, '$setElementOrder/whatever': [] } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    assert.deepEqual(strategic.data, { b: 'two', c: '3', 'd/e': '4', s: 'smp' });
    assert.equal(Object.keys(strategic).some((k) => k.startsWith('$')), false);

    const apply = await apiFailure(core.patchNamespacedConfigMap({ name: 'patched', namespace: 'default', body: 'data: {}' }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply)));
    assert.equal(apply.code, 415);
    assert.equal(apply.status['reason'], 'UnsupportedMediaType');

    const absent = await apiFailure(core.patchNamespacedConfigMap({ name: 'ghost', namespace: 'default', body: { data: {} } }, merge));
    assert.equal(absent.code, 404);
    // A uid in a patch is no precondition (as a PUT's is): it changes an immutable field.
    const uid = await apiFailure(core.patchNamespacedConfigMap({ name: 'patched', namespace: 'default', body: { metadata: { uid: '00000000-0000-4000-8000-000000000000' } } }, merge));
    assert.equal(uid.code, 422);
    assert.match(String(uid.status['message']), /metadata\.uid: Invalid value: "00000000-0000-4000-8000-000000000000": field is immutable/);
  });

  it('keeps .status on a PUT of the object; the status subresource changes .status and metadata, never spec', async () => {
    const pod = await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'stat', labels: { v: '1' } }, spec: { containers: [{ name: 'c', image: 'busybox:1' }] } } });
    const running = await core.replaceNamespacedPodStatus({
      name: 'stat',
      namespace: 'default',
      body: { ...pod, metadata: { ...pod.metadata, labels: { v: 'by-status' } }, spec: { containers: [{ name: 'c', image: 'ignored' }] }, status: { phase: 'Running', podIP: '10.244.1.5' } },
    });
    assert.equal(running.status?.phase, 'Running');
    assert.equal(running.spec?.containers[0]?.image, 'busybox:1', 'never the spec through status');
    // The pod status strategy restores spec (and ownerReferences) only: metadata is the request's.
    assert.deepEqual(running.metadata?.labels, { v: 'by-status' });
    const byIp = await core.listNamespacedPod({ namespace: 'default', fieldSelector: 'status.podIP=10.244.1.5' });
    assert.deepEqual(byIp.items.map((p) => p.metadata?.name), ['stat']);

    const relabelled = await core.replaceNamespacedPod({ name: 'stat', namespace: 'default', body: { ...running, metadata: { ...running.metadata, labels: { v: '2' } }, spec: { containers: [{ name: 'c', image: 'busybox:2' }] }, status: { phase: 'Failed' } } });
    assert.equal(relabelled.status?.phase, 'Running', 'a PUT of the pod keeps the stored status');
    assert.deepEqual(relabelled.metadata?.labels, { v: '2' });
    assert.equal(relabelled.spec?.containers[0]?.image, 'busybox:2');
    assert.equal(relabelled.metadata?.generation, 2, 'the spec changed');

    const moved = await apiFailure(core.replaceNamespacedPod({ name: 'stat', namespace: 'default', body: { ...relabelled, spec: { ...relabelled.spec, containers: relabelled.spec?.containers ?? [], nodeName: 'elsewhere' } } }));
    assert.equal(moved.code, 422);
    assert.match(String(moved.status['message']), /pod updates may not change fields other than/);

    // Nodes: status subresource too, and podCIDR(s) kept in step and immutable once set.
    const node = await core.createNode({ body: { metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.7.0/24' } } });
    assert.deepEqual(node.spec?.podCIDRs, ['10.244.7.0/24']);
    const ready = await core.patchNodeStatus({ name: 'node-a', body: { status: { conditions: [{ type: 'Ready', status: 'True' }] } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    assert.equal(ready.status?.conditions?.[0]?.type, 'Ready');
    const recidr = await apiFailure(core.patchNode({ name: 'node-a', body: { spec: { podCIDR: '10.244.8.0/24', podCIDRs: ['10.244.8.0/24'] } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)));
    assert.equal(recidr.code, 422);
  });

  it('deletes with preconditions: a stale one is a 409 Conflict, the answer is the deleted object', async () => {
    const cm = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'doomed' }, data: { a: '1' } } });
    await core.patchNamespacedConfigMap({ name: 'doomed', namespace: 'default', body: { data: { a: '2' } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    const stale = await apiFailure(core.deleteNamespacedConfigMap({ name: 'doomed', namespace: 'default', body: { preconditions: { resourceVersion: cm.metadata?.resourceVersion } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.status['reason'], 'Conflict');
    assert.match(String(stale.status['message']), /^Operation cannot be fulfilled on configmaps "doomed": Precondition failed: ResourceVersion in precondition: \d+, ResourceVersion in object meta: \d+$/);
    const wrongUid = await apiFailure(core.deleteNamespacedConfigMap({ name: 'doomed', namespace: 'default', body: { preconditions: { uid: '00000000-0000-0000-0000-000000000000' } } }));
    assert.equal(wrongUid.code, 409);

    const del = await raw(s, 'DELETE', '/api/v1/namespaces/default/configmaps/doomed', { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: cm.metadata?.uid } } });
    assert.equal(del.status, 200, JSON.stringify(del.json));
    assert.equal(field(del.json, 'kind'), 'ConfigMap');
    assert.deepEqual(field(del.json, 'data'), { a: '2' });
    assert.equal(field(del.json, 'metadata', 'resourceVersion'), String(s.revision()), 'the deleted object at the deletion revision');
    const gone = await apiFailure(core.readNamespacedConfigMap({ name: 'doomed', namespace: 'default' }));
    assert.equal(gone.code, 404);
    const again = await apiFailure(core.deleteNamespacedConfigMap({ name: 'doomed', namespace: 'default' }));
    assert.equal(again.code, 404);
  });

  it("a watch from a list's resourceVersion sees exactly the later changes, in order, with bookmarks", async () => {
    await core.createNamespace({ body: { metadata: { name: 'watched' } } });
    await core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'before' } } });
    const list = await core.listNamespacedConfigMap({ namespace: 'watched' });
    const from = list.metadata?.resourceVersion ?? '';
    assert.equal(from, String(s.revision()));
    s.bookmarkIntervalMs = 100;
    const w = await new Recorder().start(kc, '/api/v1/namespaces/watched/configmaps', { resourceVersion: from, allowWatchBookmarks: true });
    try {
      const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
      const written: Array<[string, string, string]> = [];
      const a = await core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'a' }, data: { v: '1' } } });
      written.push(['ADDED', 'a', a.metadata?.resourceVersion ?? '']);
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'elsewhere' } } });
      const a2 = await core.patchNamespacedConfigMap({ name: 'a', namespace: 'watched', body: { data: { v: '2' } } }, merge);
      written.push(['MODIFIED', 'a', a2.metadata?.resourceVersion ?? '']);
      await core.deleteNamespacedConfigMap({ name: 'a', namespace: 'watched' });
      written.push(['DELETED', 'a', String(s.revision())]);
      const b = await core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'b' } } });
      written.push(['ADDED', 'b', b.metadata?.resourceVersion ?? '']);

      await w.until('the four changes and a bookmark after them', () => w.changes().length >= 4 && w.events.at(-1)?.type === 'BOOKMARK');
      assert.deepEqual(
        w.changes().map((e) => [e.type, field(e.object, 'metadata', 'name'), field(e.object, 'metadata', 'resourceVersion')]),
        written,
      );
      for (const e of w.changes()) {
        assert.equal(e.object['kind'], 'ConfigMap');
        assert.equal(e.object['apiVersion'], 'v1');
      }
      assert.deepEqual(field(w.changes()[2]?.object, 'data'), { v: '2' }, 'DELETED carries the last state');
      const bookmark = w.events.at(-1);
      assert.equal(bookmark?.object['kind'], 'ConfigMap');
      assert.ok(Number(field(bookmark?.object, 'metadata', 'resourceVersion')) >= Number(b.metadata?.resourceVersion));
      assert.equal(w.ended, false);
      assert.equal(s.requests.filter((r) => r.watch && r.path === '/api/v1/namespaces/watched/configmaps').length, 1);
    } finally {
      w.stop();
      s.bookmarkIntervalMs = 1000;
    }
  });

  it('a watch with a selector sees an object that stops matching as DELETED and one that starts as ADDED', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'sel', labels: { role: 'gw' } } } });
    const w = await new Recorder().start(kc, '/api/v1/namespaces/default/configmaps', { labelSelector: 'role=gw' });
    try {
      await w.until('the initial ADDED', () => w.events.length >= 1);
      assert.deepEqual(w.events.map((e) => [e.type, field(e.object, 'metadata', 'name')]), [['ADDED', 'sel']]);
      const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
      await core.patchNamespacedConfigMap({ name: 'sel', namespace: 'default', body: { metadata: { labels: { role: 'other' } } } }, merge);
      await core.patchNamespacedConfigMap({ name: 'sel', namespace: 'default', body: { data: { unseen: 'yes' } } }, merge);
      await core.patchNamespacedConfigMap({ name: 'sel', namespace: 'default', body: { metadata: { labels: { role: 'gw' } } } }, merge);
      await w.until('the DELETED and ADDED', () => w.events.length >= 3);
      await sleep(50);
      assert.deepEqual(w.events.map((e) => [e.type, field(e.object, 'metadata', 'labels', 'role')]), [['ADDED', 'gw'], ['DELETED', 'gw'], ['ADDED', 'gw']]);
    } finally {
      w.stop();
    }
  });

  it('a watch from a compacted revision gets 410 Expired as an ERROR event, then the end', async () => {
    const old = s.revision();
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'compacted-1' } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'compacted-2' } } });
    s.compact(s.revision() - 1);
    const w = await new Recorder().start(kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: String(old) });
    await w.until('the end of the stream', () => w.ended);
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0]?.type, 'ERROR');
    assert.deepEqual(w.events[0]?.object, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${old} (${s.revision() - 1})`, reason: 'Expired', code: 410 });
    assert.equal(s.requests.at(-1)?.status, 200, 'the 410 is in the stream, the HTTP status is 200');

    // From the compacted revision itself a watch still works, and a list at an old revision is 410.
    const ok = await new Recorder().start(kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: String(s.revision() - 1) });
    try {
      await ok.until('the last create', () => ok.events.length >= 1);
      assert.deepEqual(ok.events.map((e) => [e.type, field(e.object, 'metadata', 'name')]), [['ADDED', 'compacted-2']]);
    } finally {
      ok.stop();
    }
    const exact = await raw(s, 'GET', `/api/v1/namespaces/default/configmaps?resourceVersion=${old}&resourceVersionMatch=Exact`);
    assert.equal(exact.status, 410);
    assert.equal(field(exact.json, 'reason'), 'Expired');
  });

  it("dropWatches ends a watch abruptly and the client's done callback fires", async () => {
    const w = await new Recorder().start(kc, '/api/v1/namespaces', {});
    await w.until('the initial namespaces', () => w.events.length >= 4);
    assert.equal(w.ended, false);
    s.dropWatches();
    await w.until('the done callback', () => w.ended, 3000);
    // An aborted read, not a clean end of the stream.
    assert.ok(w.endError instanceof Error, `done got ${String(w.endError)}`);
  });

  it("holds a service account's token to RBAC: cluster-wide through ClusterRoleBindings, one namespace through RoleBindings, resourceNames, subresources; 403 in the real words", async () => {
    const saKc = new k8s.KubeConfig();
    saKc.loadFromFile(s.writeKubeconfig(dir, { file: 'kubeconfig-sa', token: s.serviceAccountToken('rbac-test', 'agent') }));
    const sa = saKc.makeApiClient(k8s.CoreV1Api);
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    const coord = saKc.makeApiClient(k8s.CoordinationV1Api);
    const who = 'User "system:serviceaccount:rbac-test:agent"';
    const denied = await apiFailure(sa.listPodForAllNamespaces());
    assert.equal(denied.code, 403);
    assert.equal(denied.status['message'], `pods is forbidden: ${who} cannot list resource "pods" in API group "" at the cluster scope`);
    await sa.getAPIResources(); // discovery is open to every token

    await core.createNamespace({ body: { metadata: { name: 'rbac-test' } } });
    await rbac.createClusterRole({ body: { metadata: { name: 'rbac-test' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] } });
    await rbac.createClusterRoleBinding({ body: { metadata: { name: 'rbac-test' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'rbac-test' }, subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'rbac-test' }] } });
    await sa.listPodForAllNamespaces();
    await core.createNamespacedPod({ namespace: 'rbac-test', body: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'busybox:1' }] } } });
    const status = await apiFailure(sa.patchNamespacedPodStatus({ name: 'p', namespace: 'rbac-test', body: { metadata: { annotations: { a: 'b' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)));
    assert.equal(status.status['message'], `pods "p" is forbidden: ${who} cannot patch resource "pods/status" in API group "" in the namespace "rbac-test"`);

    await rbac.createNamespacedRole({ namespace: 'rbac-test', body: { metadata: { name: 'leases' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['mine'], verbs: ['get'] }] } });
    await rbac.createNamespacedRoleBinding({ namespace: 'rbac-test', body: { metadata: { name: 'leases' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'leases' }, subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'rbac-test' }] } });
    assert.equal((await apiFailure(coord.readNamespacedLease({ name: 'mine', namespace: 'rbac-test' }))).code, 404, 'allowed (and absent)');
    assert.equal((await apiFailure(coord.readNamespacedLease({ name: 'other', namespace: 'rbac-test' }))).code, 403, 'not named in resourceNames');
    assert.equal((await apiFailure(coord.readNamespacedLease({ name: 'mine', namespace: 'default' }))).code, 403, 'a RoleBinding grants its own namespace only');
    assert.equal((await apiFailure(coord.listNamespacedLease({ namespace: 'rbac-test' }))).code, 403, 'resourceNames never allow a list');
  });

  it('failNext answers 429 with Retry-After, 500 and 503 (watches included), then serves again', async () => {
    s.failNext(1, 429);
    const busy = await apiFailure(core.listNamespace());
    assert.equal(busy.code, 429);
    assert.equal(busy.headers['retry-after'], '1');
    assert.equal(busy.status['reason'], 'TooManyRequests');
    assert.equal(field(busy.status, 'details', 'retryAfterSeconds'), 1);

    s.failNext(2, 500);
    assert.equal((await apiFailure(core.listNamespace())).code, 500);
    const second = await apiFailure(core.readNamespace({ name: 'default' }));
    assert.equal(second.code, 500);
    assert.equal(second.status['reason'], 'InternalError');
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');

    s.failNext(1, 503);
    const w = await new Recorder().start(kc, '/api/v1/namespaces', {});
    await w.until('the failed watch to end', () => w.ended);
    assert.equal(field(w.endError, 'statusCode'), 503);
    assert.deepEqual(
      s.requests.slice(-5).map((r) => [r.status, r.watch]),
      [[429, false], [500, false], [500, false], [200, false], [503, true]],
    );
  });

  it('pause holds new requests and open watches deliver nothing until resume', async () => {
    const w = await new Recorder().start(kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: String(s.revision()) });
    try {
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'paused-1' } } });
      await w.until('the first event', () => w.events.length === 1);

      // A create already being received when the pause comes is served; its event is held.
      const body = JSON.stringify({ metadata: { name: 'paused-2' } });
      const inflight = new Promise<number>((resolve, reject) => {
        const headers = { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) };
        const req = httpsRequest(new URL('/api/v1/namespaces/default/configmaps', s.url), { method: 'POST', ca: s.caPem, headers }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.write(body.slice(0, 5));
        setTimeout(() => {
          s.pause();
          req.end(body.slice(5));
        }, 150);
      });
      assert.equal(await inflight, 201);
      let settled = false;
      const pending = core.listNamespace().then((l) => {
        settled = true;
        return l;
      });
      await sleep(300);
      assert.equal(settled, false, 'a new request waits while paused');
      assert.deepEqual(s.requests.at(-1)?.method, 'POST', 'and is not yet served');
      assert.equal(w.events.length, 1, 'the open watch delivered nothing while paused');
      s.resume();
      assert.ok((await pending).items.length >= 4);
      await w.until('the held event after resume', () => w.events.length === 2);
      assert.equal(field(w.events[1]?.object, 'metadata', 'name'), 'paused-2');
    } finally {
      s.resume();
      w.stop();
    }
  });

  it("registers a CRD's kind, served to client-node's KubernetesObjectApi and to kubectl", { skip: kubectlMissing }, async () => {
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: 'ippools.weft.test' },
        spec: {
          group: 'weft.test',
          scope: 'Namespaced',
          names: { plural: 'ippools', singular: 'ippool', kind: 'IPPool', listKind: 'IPPoolList', shortNames: ['ipp'] },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: {
                      type: 'object',
                      required: ['cidr'],
                      properties: { cidr: { type: 'string' }, blockSize: { type: 'integer', minimum: 16, maximum: 32, _default: 26 }, mode: { type: 'string', _enum: ['Always', 'Never'] } },
                    },
                    status: { type: 'object', properties: { allocated: { type: 'integer' } } },
                  },
                },
              },
            },
          ],
        },
      },
    });
    const crd = await ext.readCustomResourceDefinition({ name: 'ippools.weft.test' });
    assert.equal(crd.status?.conditions?.find((c) => c.type === 'Established')?.status, 'True');
    assert.deepEqual(crd.status?.storedVersions, ['v1']);

    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    const pool: k8s.KubernetesObject & Obj = { apiVersion: 'weft.test/v1', kind: 'IPPool', metadata: { name: 'pool-a', namespace: 'default' }, spec: { cidr: '10.244.0.0/16', unknown: 'pruned' }, status: { allocated: 9 } };
    const created = await objects.create(pool);
    assert.match(created.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(field(created, 'spec'), { cidr: '10.244.0.0/16', blockSize: 26 }, 'unknown fields pruned, defaults applied');
    assert.equal(field(created, 'status'), undefined, 'status is written through its subresource only');
    const listed = await objects.list('weft.test/v1', 'IPPool', 'default');
    assert.deepEqual(listed.items.map((o) => o.metadata?.name), ['pool-a']);

    const invalidPool = await apiFailure(objects.create({ ...pool, metadata: { name: 'pool-b', namespace: 'default' }, spec: { blockSize: 8, mode: 'Sometimes' } }));
    assert.equal(invalidPool.code, 422);
    assert.equal(
      invalidPool.status['message'],
      'IPPool.weft.test "pool-b" is invalid: [spec.blockSize: Invalid value: 8: spec.blockSize in body should be greater than or equal to 16, spec.mode: Unsupported value: "Sometimes": supported values: "Always", "Never", spec.cidr: Required value]',
    );

    const status = await raw(s, 'PUT', '/apis/weft.test/v1/namespaces/default/ippools/pool-a/status', { body: { ...created, status: { allocated: 3 } } });
    assert.equal(status.status, 200);
    assert.equal(field(status.json, 'metadata', 'generation'), 1, 'a status write is no spec change');
    const specChange = await objects.patch<k8s.KubernetesObject & Obj>({ apiVersion: 'weft.test/v1', kind: 'IPPool', metadata: { name: 'pool-a', namespace: 'default' }, spec: { mode: 'Never' } }, undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch);
    assert.equal(specChange.metadata?.generation, 2);
    assert.deepEqual(field(specChange, 'status'), { allocated: 3 });

    const viaKubectl = await kubectl(['get', 'ipp', '-n', 'default', '-o', 'json']);
    assert.equal(viaKubectl.code, 0, viaKubectl.stderr);
    const got: unknown = JSON.parse(viaKubectl.stdout);
    const items = field(got, 'items');
    assert.ok(Array.isArray(items) && items.length === 1);
    assert.equal(field(items[0], 'kind'), 'IPPool');
    assert.deepEqual(field(items[0], 'spec'), { cidr: '10.244.0.0/16', blockSize: 26, mode: 'Never' });

    // Deleting the CRD takes its objects and its paths with it.
    await ext.deleteCustomResourceDefinition({ name: 'ippools.weft.test' });
    const gone = await raw(s, 'GET', '/apis/weft.test/v1/namespaces/default/ippools');
    assert.equal(gone.status, 404);
    const groups = await raw(s, 'GET', '/apis');
    const names = field(groups.json, 'groups');
    assert.ok(Array.isArray(names) && !names.some((g) => field(g, 'name') === 'weft.test'));
  });

  it("kubectl apply of a changed DaemonSet: its strategic merge patch merges containers and env by name", { skip: kubectlMissing }, async () => {
    const file = join(dir, 'daemonset.yaml');
    const manifest = (tag: string, b: string): string => `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: weft-agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: weft-agent}}
  template:
    metadata: {labels: {app: weft-agent}}
    spec:
      hostNetwork: true
      containers:
      - name: agent
        image: weft/agent:${tag}
        env: [{name: A, value: "1"}, {name: B, value: "${b}"}]
        ports: [{containerPort: 9100, name: metrics}]
      - {name: sidecar, image: busybox}
`;
    writeFileSync(file, manifest('v1', 'x'));
    const first = await kubectl(['apply', '-f', file]);
    assert.equal(first.code, 0, first.stderr);
    writeFileSync(file, manifest('v2', 'y'));
    const second = await kubectl(['apply', '-f', file]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), 'daemonset.apps/weft-agent configured');
    assert.equal(s.requests.filter((r) => r.method === 'PATCH' && r.path === '/apis/apps/v1/namespaces/kube-system/daemonsets/weft-agent').length, 1);
    const ds = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDaemonSet({ name: 'weft-agent', namespace: 'kube-system' });
    const containers = ds.spec?.template.spec?.containers ?? [];
    assert.deepEqual(containers.map((c) => [c.name, c.image]), [['agent', 'weft/agent:v2'], ['sidecar', 'busybox']]);
    assert.deepEqual(containers[0]?.env?.map((e) => [e.name, e.value]), [['A', '1'], ['B', 'y']]);
    assert.equal(containers[0]?.ports?.[0]?.containerPort, 9100);
    assert.equal(ds.metadata?.generation, 2);
    assert.equal(ds.status?.numberReady, 0);
  });

  it('kubectl apply -f of a Namespace, a ConfigMap and a custom object; get -o json; delete -f', { skip: kubectlMissing }, async () => {
    const crdFile = join(dir, 'crd.yaml');
    writeFileSync(
      crdFile,
      `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ipblocks.weft.test
spec:
  group: weft.test
  scope: Cluster
  names: {plural: ipblocks, singular: ipblock, kind: IPBlock}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cidr: {type: string}
              node: {type: string}
`,
    );
    const crd = await kubectl(['apply', '-f', crdFile]);
    assert.equal(crd.code, 0, crd.stderr);
    assert.equal(crd.stdout.trim(), 'customresourcedefinition.apiextensions.k8s.io/ipblocks.weft.test created');

    const app = (mtu: string, node: string): string => `apiVersion: v1
kind: Namespace
metadata:
  name: weft-demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: weft-config
  namespace: weft-demo
data:
  mtu: "${mtu}"
---
apiVersion: weft.test/v1
kind: IPBlock
metadata:
  name: block-a
  labels: {node: ${node}}
spec:
  cidr: 10.244.3.0/26
  node: ${node}
`;
    const appFile = join(dir, 'app.yaml');
    writeFileSync(appFile, app('1450', 'node-1'));
    const applied = await kubectl(['apply', '-f', appFile]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(applied.stdout.trim().split('\n'), ['namespace/weft-demo created', 'configmap/weft-config created', 'ipblock.weft.test/block-a created']);

    writeFileSync(appFile, app('1400', 'node-2'));
    const reapplied = await kubectl(['apply', '-f', appFile]);
    assert.equal(reapplied.code, 0, reapplied.stderr);
    assert.deepEqual(reapplied.stdout.trim().split('\n'), ['namespace/weft-demo unchanged', 'configmap/weft-config configured', 'ipblock.weft.test/block-a configured']);

    const got = await kubectl(['get', '-f', appFile, '-o', 'json']);
    assert.equal(got.code, 0, got.stderr);
    const list: unknown = JSON.parse(got.stdout);
    const items = field(list, 'items');
    assert.ok(Array.isArray(items));
    assert.deepEqual(items.map((i) => [field(i, 'kind'), field(i, 'metadata', 'name')]), [['Namespace', 'weft-demo'], ['ConfigMap', 'weft-config'], ['IPBlock', 'block-a']]);
    assert.deepEqual(field(items[1], 'data'), { mtu: '1400' });
    assert.deepEqual(field(items[2], 'spec'), { cidr: '10.244.3.0/26', node: 'node-2' });
    assert.equal(field(items[2], 'metadata', 'generation'), 2);
    const byLabel = await kubectl(['get', 'ipblocks', '-l', 'node=node-2', '-o', 'name']);
    assert.equal(byLabel.stdout.trim(), 'ipblock.weft.test/block-a');

    // The stand-in deletes a namespace's objects with it (no Terminating phase), so kubectl's
    // DELETE of the ConfigMap that follows the Namespace's finds nothing: tolerated here; the
    // real server would still have it until its namespace controller ran.
    const deleted = await kubectl(['delete', '-f', appFile, '--ignore-not-found']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /namespace "weft-demo" deleted/);
    assert.match(deleted.stdout, /ipblock\.weft\.test "block-a" deleted/);
    assert.equal((await apiFailure(core.readNamespace({ name: 'weft-demo' }))).code, 404);
    assert.equal((await apiFailure(core.readNamespacedConfigMap({ name: 'weft-config', namespace: 'weft-demo' }))).code, 404);
    const blocks = await kubectl(['get', 'ipblocks', '-o', 'json']);
    assert.deepEqual(field(JSON.parse(blocks.stdout), 'items'), []);
    // kubectl found its way by aggregated discovery and the OpenAPI v3 index, with no error.
    assert.ok(s.requests.some((r) => r.path === '/apis' && r.userAgent.startsWith('kubectl')));
    assert.ok(s.requests.some((r) => r.path === '/openapi/v3' && r.status === 200));
  });
});
