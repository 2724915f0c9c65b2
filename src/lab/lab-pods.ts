import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseResult } from '../cni/convert.js';
import { addressOf } from '../cni/result.js';
import { loadNetwork } from '../cniruntime/loader.js';
import { CniRuntime, type RuntimeConf } from '../cniruntime/runtime.js';
import { isStoreError, type Store } from '../datastore/store.js';
import { endProcess, startDaemon } from '../kernel/exec.js';
import { runInNetns } from '../kernel/interactive.js';
import { ipBatch, ipc } from '../kernel/ip.js';
import { createNamedNetns, deleteNamedNetns } from '../kernel/netns.js';
import type { KObject, NamespaceObject, NetworkPolicyObject, PodObject } from '../model/objects.js';
import { UserError } from '../util/user-error.js';
import { waitPolicyConverged, withLabStore } from './lab.js';
import { labLock, loadLab, saveLab, type LabNode, type LabPod, type LabState } from './lab-state.js';
import { ProbeClient, type PortSpec, type ProbeResult, type Protocol } from './pod-server.js';
import { compareText } from '../util/compare-text.js';

/**
 * Namespaces and pods of a lab. A pod is a netns attached by running the real plugin through
 * the CNI runtime inside its node's netns (the exact protocol a runtime uses), a Pod object in
 * the datastore (what policy will read), and a small server on its declared ports.
 */
const METADATA_NAME = 'kubernetes.io/metadata.name';

async function updateWithRetry<T extends KObject>(store: Store, kind: string, name: string, namespace: string | undefined, change: (o: T) => T): Promise<T> {
  for (let i = 0; i < 10; i++) {
    const cur = await store.get<T>(kind, name, namespace);
    if (!cur) throw new UserError(`${kind.toLowerCase()} ${namespace ? `${namespace}/` : ''}${name} does not exist`);
    try {
      return await store.update(change(structuredClone(cur)));
    } catch (err) {
      if (!isStoreError(err, 'Conflict')) throw err;
    }
  }
  throw new UserError(`${kind} ${name} keeps changing under us; try again`);
}

export async function nsCreate(labName: string, ns: string, labels: Record<string, string>): Promise<NamespaceObject> {
  const state = loadLab(labName);
  return withLabStore(state, async (store) => {
    const obj: NamespaceObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...labels, [METADATA_NAME]: ns } } };
    try {
      return await store.create(obj);
    } catch (err) {
      if (isStoreError(err, 'AlreadyExists')) throw new UserError(`namespace ${ns} already exists (use \`weft lab ns label\` to change its labels)`);
      if (isStoreError(err, 'Invalid')) throw new UserError(`namespace ${JSON.stringify(ns)}: must be a DNS label (a-z, 0-9, "-")`);
      throw err;
    }
  });
}

export async function nsLabel(labName: string, ns: string, set: Record<string, string>, remove: string[]): Promise<NamespaceObject> {
  if (remove.includes(METADATA_NAME) || METADATA_NAME in set) throw new UserError(`${METADATA_NAME} is set by the namespace itself and cannot be changed`);
  const state = loadLab(labName);
  const obj = await withLabStore(state, (store) =>
    updateWithRetry<NamespaceObject>(store, 'Namespace', ns, undefined, (o) => {
      const labels = { ...(o.metadata.labels ?? {}), ...set };
      for (const k of remove) delete labels[k];
      o.metadata.labels = labels;
      return o;
    }),
  );
  await waitPolicyConverged(state);
  return obj;
}

/**
 * Deletes a namespace and, as Kubernetes does, the NetworkPolicies in it. Its pods go first
 * (`lab pod delete`: each is a netns and a process, not only an object); returns how many
 * policies went with it.
 */
export async function nsDelete(labName: string, ns: string): Promise<{ policies: number }> {
  const state = loadLab(labName);
  const left = state.pods.filter((p) => p.namespace === ns).map((p) => `${p.namespace}/${p.name}`);
  if (left.length) throw new UserError(`namespace ${ns} still has pods (${left.join(', ')}): \`weft lab pod delete\` them first`);
  const policies = await withLabStore(state, async (store) => {
    if (!(await store.get('Namespace', ns))) throw new UserError(`namespace ${ns} does not exist`);
    const items = (await store.list<NetworkPolicyObject>('NetworkPolicy', ns)).items;
    for (const p of items) await store.delete('NetworkPolicy', p.metadata.name, ns);
    await store.delete('Namespace', ns);
    return items.length;
  });
  await waitPolicyConverged(state);
  return { policies };
}

function runtimeFor(node: LabNode): CniRuntime {
  return new CniRuntime({ path: [node.binDir, '/usr/lib/cni'], cacheDir: node.cacheDir, netns: `/run/netns/${node.netns}` });
}

function podConf(pod: Pick<LabPod, 'containerId' | 'netns' | 'namespace' | 'name' | 'labels'>): RuntimeConf {
  return {
    containerId: pod.containerId,
    netns: `/run/netns/${pod.netns}`,
    ifName: 'eth0',
    args: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', pod.namespace],
      ['K8S_POD_NAME', pod.name],
      ['K8S_POD_INFRA_CONTAINER_ID', pod.containerId],
    ],
    capabilityArgs: {},
    labels: pod.labels,
  };
}

export interface PodCreate {
  namespace: string;
  name: string;
  node?: string;
  labels: Record<string, string>;
  ports: PortSpec[];
}

export async function podCreate(labName: string, spec: PodCreate, cliEntry: string): Promise<LabPod> {
  return labLock(labName).run(async () => {
    const state = loadLab(labName);
    if (state.pods.some((p) => p.namespace === spec.namespace && p.name === spec.name)) throw new UserError(`pod ${spec.namespace}/${spec.name} already exists`);
    const nodeName = spec.node ?? state.nodes[state.pods.length % state.nodes.length]?.name;
    const node = state.nodes.find((n) => n.name === nodeName);
    if (!node) throw new UserError(`--node ${spec.node}: no such node (the lab has ${state.nodes.map((n) => n.name).join(', ')})`);
    const names = spec.ports.map((p) => p.name).filter((n): n is string => n !== undefined);
    if (new Set(names).size !== names.length) throw new UserError('port names must be unique within a pod');
    const pod: LabPod = {
      namespace: spec.namespace,
      name: spec.name,
      node: node.name,
      netns: `${state.prefix}.p-${spec.namespace}-${spec.name}`,
      labels: spec.labels,
      ports: spec.ports,
      containerId: `lab-${spec.namespace}-${spec.name}`,
      addresses: [],
      control: join(state.dir, 'pods', `${spec.namespace}.${spec.name}.sock`),
    };
    await withLabStore(state, async (store) => {
      if (!(await store.get('Namespace', spec.namespace))) throw new UserError(`namespace ${spec.namespace} does not exist: \`weft lab ns create ${spec.namespace}\` first`);
      const obj: PodObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels },
        spec: {
          nodeName: node.name,
          containers: [{ name: 'app', image: 'weft-lab-server', ports: spec.ports.map((p) => ({ containerPort: p.port, protocol: p.protocol, ...(p.name ? { name: p.name } : {}) })) }],
        },
        status: { phase: 'Pending' },
      };
      try {
        await store.create(obj);
      } catch (err) {
        if (isStoreError(err, 'Invalid')) throw new UserError(`pod ${spec.namespace}/${spec.name}: ${err.message}`);
        if (isStoreError(err, 'AlreadyExists')) throw new UserError(`a Pod ${spec.namespace}/${spec.name} already exists in the datastore`);
        throw err;
      }
    });
    const rt = runtimeFor(node);
    let attached = false;
    try {
      mkdirSync(join(state.dir, 'pods'), { recursive: true });
      await createNamedNetns(pod.netns);
      await ipBatch([ipc`link set lo up`], { netns: `/run/netns/${pod.netns}` });
      const list = await loadNetwork(node.confDir);
      const raw = await rt.add(list, podConf(pod));
      attached = true;
      pod.addresses = (parseResult(raw, list.cniVersion).ips ?? []).map((i) => addressOf(i.address));
      const server = await startDaemon(
        process.execPath,
        [cliEntry, 'lab', 'pod-server', '--identity', `${pod.namespace}/${pod.name}`, '--control', pod.control, ...pod.ports.map((p) => ['--port', `${p.port}/${p.protocol}`]).flat()],
        { netns: `/run/netns/${pod.netns}`, logFile: join(state.dir, 'pods', `${spec.namespace}.${spec.name}.log`), detached: true },
      );
      pod.serverPid = server.pid as number;
      await waitForControl(pod.control);
      await withLabStore(state, (store) =>
        updateWithRetry<PodObject>(store, 'Pod', pod.name, pod.namespace, (o) => ({
          ...o,
          status: { phase: 'Running', hostIP: node.ips[0], podIP: pod.addresses[0], podIPs: pod.addresses.map((ip) => ({ ip })) },
        })),
      );
    } catch (err) {
      if (pod.serverPid) await endProcess(pod.serverPid, 1000);
      if (attached) await rt.del(await loadNetwork(node.confDir), podConf(pod)).catch(() => undefined);
      await deleteNamedNetns(pod.netns).catch(() => undefined);
      await withLabStore(state, (store) => store.delete('Pod', pod.name, pod.namespace)).catch(() => undefined);
      throw err;
    }
    state.pods.push(pod);
    saveLab(state);
    await waitPolicyConverged(state);
    return pod;
  });
}

async function waitForControl(path: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const c = new ProbeClient(path);
    try {
      await c.probe({ host: '127.0.0.1', port: 9, protocol: 'TCP', timeoutMs: 50 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the pod server did not start (${(err as Error).message})`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      c.close();
    }
  }
}

function findPod(state: LabState, ref: { namespace: string; name: string }): LabPod {
  const p = state.pods.find((x) => x.namespace === ref.namespace && x.name === ref.name);
  if (!p) throw new UserError(`no pod ${ref.namespace}/${ref.name} in lab ${state.name} (see \`weft lab status\`)`);
  return p;
}

export async function podDelete(labName: string, ref: { namespace: string; name: string }): Promise<void> {
  await labLock(labName).run(async () => {
    const state = loadLab(labName);
    const pod = findPod(state, ref);
    const node = state.nodes.find((n) => n.name === pod.node) as LabNode;
    if (pod.serverPid) await endProcess(pod.serverPid, 2000);
    await runtimeFor(node).del(await loadNetwork(node.confDir), podConf(pod));
    await deleteNamedNetns(pod.netns);
    await withLabStore(state, (store) => store.delete('Pod', pod.name, pod.namespace));
    state.pods = state.pods.filter((p) => p !== pod);
    saveLab(state);
    await waitPolicyConverged(state);
  });
}

export async function podLabel(labName: string, ref: { namespace: string; name: string }, set: Record<string, string>, remove: string[]): Promise<PodObject> {
  return labLock(labName).run(async () => {
    const state = loadLab(labName);
    const pod = findPod(state, ref);
    const obj = await withLabStore(state, (store) =>
      updateWithRetry<PodObject>(store, 'Pod', pod.name, pod.namespace, (o) => {
        const labels = { ...(o.metadata.labels ?? {}), ...set };
        for (const k of remove) delete labels[k];
        o.metadata.labels = labels;
        return o;
      }),
    );
    pod.labels = obj.metadata.labels ?? {};
    saveLab(state);
    await waitPolicyConverged(state);
    return obj;
  });
}

export async function labExec(labName: string, ref: { namespace: string; name: string }, argv: string[]): Promise<number> {
  if (argv.length === 0) throw new UserError('nothing to run: weft lab exec NS/POD -- COMMAND [ARGS…]');
  const pod = findPod(loadLab(labName), ref);
  return runInNetns(`/run/netns/${pod.netns}`, argv);
}

export type Family = 4 | 6;

export interface ProbeTarget {
  label: string;
  address: string;
}

/** Where a probe goes: a pod (its address of that family), "external", or a literal address. */
export function resolveTarget(state: LabState, to: string, family: Family): ProbeTarget {
  if (to === 'external') return { label: 'external', address: state.external.ips[family === 4 ? 0 : 1] as string };
  if (/^[0-9.]+$|:/.test(to) && !to.includes('/')) return { label: to, address: to };
  const [namespace, name] = to.split('/');
  const pod = findPod(state, { namespace: namespace ?? '', name: name ?? '' });
  const address = pod.addresses.find((a) => a.includes(':') === (family === 6));
  if (!address) throw new UserError(`pod ${to} has no IPv${family} address`);
  return { label: to, address };
}

export interface ProbeOutcome extends ProbeResult {
  from: string;
  to: string;
  address: string;
  port: number;
  protocol: Protocol;
  family: Family;
}

export async function labProbe(labName: string, from: { namespace: string; name: string }, to: string, port: number, protocol: Protocol, family: Family, timeoutMs: number): Promise<ProbeOutcome> {
  const state = loadLab(labName);
  const src = findPod(state, from);
  const target = resolveTarget(state, to, family);
  const client = new ProbeClient(src.control);
  try {
    const r = await client.probe({ host: target.address, port, protocol, timeoutMs });
    return { ...r, from: `${from.namespace}/${from.name}`, to: target.label, address: target.address, port, protocol, family };
  } finally {
    client.close();
  }
}

export interface MatrixOptions {
  ports?: number[];
  protocols: Protocol[];
  families: Family[];
  timeoutMs: number;
}

export interface Matrix {
  pods: string[];
  cases: Array<{ port: number; protocol: Protocol; family: Family }>;
  results: ProbeOutcome[];
}

/** Every pod to every pod (itself included), for each port, protocol and family, all at once. */
export async function labMatrix(labName: string, o: MatrixOptions): Promise<Matrix> {
  const state = loadLab(labName);
  const pods = [...state.pods].sort((a, b) => compareText(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
  // Explicit ports: each with each protocol. Otherwise the (port, protocol) pairs pods declare.
  const pairs = o.ports
    ? o.ports.flatMap((port) => o.protocols.map((protocol) => ({ port, protocol })))
    : [...new Map(pods.flatMap((p) => p.ports).filter((x) => o.protocols.includes(x.protocol)).map((x) => [`${x.port}/${x.protocol}`, { port: x.port, protocol: x.protocol }])).values()].sort((a, b) => a.port - b.port || compareText(a.protocol, b.protocol));
  const cases = pairs.flatMap(({ port, protocol }) => o.families.map((family) => ({ port, protocol, family })));
  const clients = new Map(pods.map((p) => [p, new ProbeClient(p.control)]));
  try {
    const jobs: Array<Promise<ProbeOutcome>> = [];
    for (const c of cases) {
      for (const src of pods) {
        for (const dst of pods) {
          const address = dst.addresses.find((a) => a.includes(':') === (c.family === 6));
          const label = `${dst.namespace}/${dst.name}`;
          const from = `${src.namespace}/${src.name}`;
          if (!address) {
            jobs.push(Promise.resolve({ ok: false, ms: 0, error: `no IPv${c.family} address`, from, to: label, address: '', ...c }));
            continue;
          }
          jobs.push(
            (clients.get(src) as ProbeClient).probe({ host: address, port: c.port, protocol: c.protocol, timeoutMs: o.timeoutMs }).then((r) => ({ ...r, from, to: label, address, ...c })),
          );
        }
      }
    }
    return { pods: pods.map((p) => `${p.namespace}/${p.name}`), cases, results: await Promise.all(jobs) };
  } finally {
    for (const c of clients.values()) c.close();
  }
}
