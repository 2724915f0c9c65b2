import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { AGENT_ACCESS } from '../src/agent/rbac.js';
import { KUBE_RESOURCES } from '../src/datastore/kubernetes-store.js';
import { ROOT } from './helpers/env.js';
import { standinFixture, weftAsync } from './helpers/kube-run.js';

/**
 * The install manifests (deploy/): what they grant is exactly what the agent's code needs
 * (src/agent/rbac.ts), every flag they give exists, and Debian's kubectl applies the directory
 * to the Kubernetes API stand-in as an operator would. Not here: running the DaemonSet (no
 * image is built yet, and the stand-in runs no controllers).
 */
interface Rule { apiGroups: string[]; resources: string[]; verbs: string[] }
interface Doc { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; spec?: unknown }

const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'weft.yaml'), 'utf8')).map((d) => d.toJSON() as Doc).filter((d) => d);


describe('the install manifests (deploy/)', () => {
  it('grant exactly what the agent does with each kind: no more, no less', () => {
    const granted = new Map<string, Set<string>>();
    for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of d.rules ?? []) {
        for (const g of r.apiGroups) for (const res of r.resources) granted.set(`${g}/${res}`, new Set([...(granted.get(`${g}/${res}`) ?? []), ...r.verbs]));
      }
    }
    const needed = new Map(Object.entries(AGENT_ACCESS).map(([kind, verbs]) => {
      const r = KUBE_RESOURCES[kind];
      assert.ok(r, `${kind} is a kind the Kubernetes datastore keeps`);
      return [`${r.group}/${r.plural}`, new Set(verbs)] as const;
    }));
    const show = (m: Map<string, Set<string>>): Record<string, string[]> => Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]).sort());
    assert.deepEqual(show(granted), show(needed));
    assert.deepEqual(Object.keys(AGENT_ACCESS).sort(), Object.keys(KUBE_RESOURCES).sort(), 'every kind the store keeps has its access written down');
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
