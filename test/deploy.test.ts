import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';
import { AGENT_ACCESS } from '../src/agent/rbac.js';
import { KUBE_RESOURCES } from '../src/datastore/kubernetes-store.js';
import { ROOT } from './helpers/env.js';
import { standinFixture, weftAsync } from './helpers/kube-run.js';

/**
 * The install manifests (deploy/): valid against the Kubernetes OpenAPI schemas (offline), what
 * they grant is exactly what the agent's code needs (src/agent/rbac.ts), every flag they give
 * exists, and Debian's kubectl applies the directory to the Kubernetes API stand-in as an
 * operator would. The image they name is run by test/image.test.ts.
 */
interface Rule { apiGroups: string[]; resources: string[]; verbs: string[] }
interface Doc { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; spec?: unknown }

const load = (file: string): Doc[] => parseAllDocuments(readFileSync(join(ROOT, 'deploy', file), 'utf8')).map((d) => d.toJSON() as Doc).filter((d) => d);
const docs = load('weft.yaml');

/** A kubernetes-models class: constructed from an object, it validates it against its schema. */
type Model = new (data: never) => { validate(): void };
const model = (C: Model) => (o: unknown): { validate(): void } => new C(o as ConstructorParameters<Model>[0]);

/** The Kubernetes OpenAPI schemas of each kind deploy/ holds, as kubernetes-models compiled them. */
const MODELS: Record<string, (o: unknown) => { validate(): void }> = {
  'v1/Namespace': model(Namespace),
  'v1/ServiceAccount': model(ServiceAccount),
  'v1/ConfigMap': model(ConfigMap),
  'apps/v1/DaemonSet': model(DaemonSet),
  'rbac.authorization.k8s.io/v1/ClusterRole': model(ClusterRole),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': model(ClusterRoleBinding),
  'rbac.authorization.k8s.io/v1/Role': model(Role),
  'rbac.authorization.k8s.io/v1/RoleBinding': model(RoleBinding),
  'apiextensions.k8s.io/v1/CustomResourceDefinition': model(CustomResourceDefinition),
};

function schemaProblem(o: Doc & { apiVersion?: string }): string | undefined {
  const model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!model) return `no schema here for ${o.apiVersion}/${o.kind}`;
  try {
    model(o).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}


describe('the install manifests (deploy/)', () => {
  it('are valid against the Kubernetes OpenAPI schemas (offline: kubernetes-models), every document of both files', () => {
    const all = [...docs, ...load('crds.yaml')];
    assert.ok(all.length >= 12, `${all.length} documents`);
    for (const d of all) assert.equal(schemaProblem(d), undefined, `${d.kind} ${d.metadata.name}`);
    // The check has teeth: what a real API server refuses, it refuses.
    const ds = structuredClone(docs.find((d) => d.kind === 'DaemonSet')) as Doc & { spec: { template: { spec: Record<string, unknown> } } };
    ds.spec.template.spec['hostNetwork'] = 'true';
    assert.match(schemaProblem(ds) ?? '', /hostNetwork must be boolean/);
    const crd = structuredClone(load('crds.yaml')[0]) as Doc & { spec: Record<string, unknown> };
    delete crd.spec['names'];
    assert.match(schemaProblem(crd) ?? '', /data\/spec must have required property names/);
  });

  it('grant exactly what the agent does with each kind: no more, no less', () => {
    const granted = new Map<string, Set<string>>();
    for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of d.rules ?? []) {
        for (const g of r.apiGroups) for (const res of r.resources) granted.set(`${g}/${res}`, new Set([...(granted.get(`${g}/${res}`) ?? []), ...r.verbs]));
      }
    }
    const needed = new Map(Object.entries(AGENT_ACCESS).map(([key, verbs]) => {
      const [kind = '', sub] = key.split('/');
      const r = KUBE_RESOURCES[kind];
      assert.ok(r, `${kind} is a kind the Kubernetes datastore keeps`);
      return [`${r.group}/${r.plural}${sub ? `/${sub}` : ''}`, new Set(verbs)] as const;
    }));
    const show = (m: Map<string, Set<string>>): Record<string, string[]> => Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]).sort());
    assert.deepEqual(show(granted), show(needed));
    assert.deepEqual(Object.keys(AGENT_ACCESS).filter((k) => !k.includes('/')).sort(), Object.keys(KUBE_RESOURCES).sort(), 'every kind the store keeps has its access written down');
    assert.deepEqual(Object.keys(AGENT_ACCESS).filter((k) => k.includes('/')).sort(), Object.entries(KUBE_RESOURCES).filter(([, r]) => r.annotateViaStatus).map(([k]) => `${k}/status`).sort(), 'status patched for the kinds annotated through it');
    const leases = docs.find((d) => d.kind === 'Role');
    assert.equal(leases?.metadata.namespace, 'weft-system', 'leases only in weft-system');
    assert.ok(!docs.some((d) => d.kind === 'ClusterRole' && d.rules?.some((r) => r.resources.includes('leases'))), 'no cluster-wide lease access');
  });

  it('give only flags the commands have', async () => {
    const ds = docs.find((d) => d.kind === 'DaemonSet') as { spec: { template: { spec: { initContainers: Array<{ command: string[] }>; containers: Array<{ command: string[]; args: string[]; livenessProbe: { exec: { command: string[] } }; readinessProbe: { exec: { command: string[] } } }> } } } };
    const agent = ds.spec.template.spec.containers[0];
    const init = ds.spec.template.spec.initContainers[0];
    assert.ok(agent && init);
    const flagsOf = (argv: string[]): string[] => argv.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0] as string);
    for (const [cmd, flags] of [[['agent'], flagsOf(agent.args)], [['install'], flagsOf(init.command)], [['health'], [...flagsOf(agent.livenessProbe.exec.command), ...flagsOf(agent.readinessProbe.exec.command)]]] as const) {
      const help = await weftAsync([...cmd, '--help']);
      assert.equal(help.code, 0, help.stderr);
      for (const f of flags) assert.match(help.stdout, new RegExp(`${f} `), `weft ${cmd.join(' ')} has ${f}`);
    }
    assert.deepEqual([agent.command, init.command.slice(0, 2)], [['weft', 'agent'], ['weft', 'install']]);
  });

  describe('kubectl apply -f deploy/ (the API stand-in)', () => {
    const { kubectl } = standinFixture('weft-deploy-');

    it('applies cleanly, twice, and what lands is what the manifests say', async () => {
      const first = await kubectl(['apply', '-f', join(ROOT, 'deploy')]);
      assert.match(first, /daemonset\.apps\/weft-agent created/);
      assert.match(first, /customresourcedefinition\.apiextensions\.k8s\.io\/weftclusterpolicies\.weft\.io created/);
      const again = await kubectl(['apply', '-f', join(ROOT, 'deploy')]);
      assert.doesNotMatch(again, /created|configured/, 'a second apply changes nothing');
      const ds = JSON.parse(await kubectl(['get', 'daemonset', '-n', 'weft-system', 'weft-agent', '-o', 'json'])) as { spec: { updateStrategy: unknown; template: { spec: { hostNetwork: boolean; hostPID: boolean; priorityClassName: string; tolerations: unknown[]; serviceAccountName: string } } } };
      assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
      const t = ds.spec.template.spec;
      assert.deepEqual([t.hostNetwork, t.hostPID, t.priorityClassName, t.serviceAccountName], [true, true, 'system-node-critical', 'weft-agent']);
      assert.deepEqual(t.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
      assert.match(await kubectl(['get', 'configmap', '-n', 'weft-system', 'weft-config', '-o', 'jsonpath={.data.ipam}']), /^kubernetes$/);
    });
  });
});
