import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendType } from '../model/objects.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { LockFile } from '../util/lock-file.js';
import { UserError } from '../util/user-error.js';
import type { PortSpec } from './pod-server.js';

/**
 * What a running lab is: its namespaces, processes and pods, in one JSON file under the lab's
 * directory, changed under a lock (lab commands may run side by side). Every netns name starts
 * with the lab's prefix, so `down` finds everything even when this file is lost.
 */
export const LAB_ROOT = process.env['WEFT_LAB_ROOT'] ?? '/run/weft/labs';

export interface LabNode {
  name: string;
  netns: string;
  ips: string[];
  dir: string;
  stateDir: string;
  socket: string;
  binDir: string;
  confDir: string;
  cacheDir: string;
  log: string;
  agentPid?: number;
}

export interface LabPod {
  namespace: string;
  name: string;
  node: string;
  netns: string;
  labels: Record<string, string>;
  ports: PortSpec[];
  containerId: string;
  addresses: string[];
  control: string;
  serverPid?: number;
}

export type LabDatastore =
  | { kind: 'file'; dir: string }
  | { kind: 'etcd'; endpoint: string; dataDir: string; pid?: number }
  /** The Kubernetes API stand-in (test code), on a unix socket; kubeconfig names it. */
  | { kind: 'kubernetes'; socket: string; kubeconfig: string; pid?: number; /** The agents': the weft-agent service account, held to deploy/weft.yaml's RBAC. */ agentKubeconfig?: string };

export interface LabState {
  version: 1;
  name: string;
  prefix: string;
  dir: string;
  createdAt: string;
  backend: BackendType;
  /** Absent: none. */
  encryption?: 'wireguard';
  datastore: LabDatastore;
  clusterCidrs: string[];
  leaseDurationSeconds: number;
  /** Seconds an agent may stay silent before its node counts as gone (absent: the agents' default). */
  nodeGraceSeconds?: number;
  /** The agents' --log-level, when not the default. */
  agentLogLevel?: 'debug' | 'info';
  /** More agent flags the lab was started with (benchmarks). */
  extraAgentArgs?: string[];
  switchNetns: string;
  external: { netns: string; ips: string[]; control: string; serverPid?: number };
  nodes: LabNode[];
  pods: LabPod[];
  /** Node numbers are never reused: a removed node's kernel objects may linger for a moment. */
  nextNodeIndex?: number;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,15}$/;

export function validateLabName(name: string): void {
  if (!NAME.test(name)) throw new UserError(`lab name ${JSON.stringify(name)}: use 1-16 of a-z, 0-9 and "-", starting with a letter or digit`);
}

export function labDir(name: string): string {
  return join(LAB_ROOT, name);
}

export function labPrefix(name: string): string {
  return `wl-${name}`;
}

export function labLock(name: string): LockFile {
  return new LockFile(join(labDir(name), 'lab.lock'), `lab ${name}`, 60_000);
}

export function listLabs(): string[] {
  if (!existsSync(LAB_ROOT)) return [];
  return readdirSync(LAB_ROOT).filter((n) => existsSync(join(LAB_ROOT, n, 'lab.json')));
}

/** The lab a command means: the one named, or the only one running. */
export function resolveLabName(name: string | undefined): string {
  if (name !== undefined) {
    validateLabName(name);
    return name;
  }
  const labs = listLabs();
  if (labs.length === 1) return labs[0] as string;
  if (labs.length === 0) throw new UserError('no lab is running: start one with `weft lab up --name NAME`');
  throw new UserError(`several labs are running (${labs.join(', ')}): say which with --name`);
}

export function loadLab(name: string): LabState {
  const file = join(labDir(name), 'lab.json');
  if (!existsSync(file)) throw new UserError(`no lab named ${name} is running (see \`weft lab status\`)`);
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

export function saveLab(state: LabState): void {
  writeFileAtomic(join(state.dir, 'lab.json'), JSON.stringify(state, null, 2) + '\n', 0o644);
}

/** "ns/pod" -> parts; refuses anything that is not two DNS labels. */
export function parsePodRef(ref: string): { namespace: string; name: string } {
  const m = /^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?)$/.exec(ref);
  if (!m) throw new UserError(`${JSON.stringify(ref)} is not NAMESPACE/POD (lowercase DNS names, e.g. shop/web-1)`);
  return { namespace: m[1] as string, name: m[3] as string };
}

/** "80", "http:80", "http:80/TCP", "53/udp" -> a port spec. */
export function parsePortSpec(text: string): PortSpec {
  const m = /^(?:([a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?):)?(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) {
    throw new UserError(`--port ${text}: expected [NAME:]PORT[/PROTO], e.g. http:80/TCP or dns:53/UDP (PORT 1-65535, PROTO TCP, UDP or SCTP)`);
  }
  const spec: PortSpec = { port, protocol: (m[4] ?? 'TCP').toUpperCase() as PortSpec['protocol'] };
  if (m[1]) spec.name = m[1].toLowerCase();
  return spec;
}

/** "k=v" -> set, "k-" -> remove (kubectl's syntax). */
export function parseLabelChanges(items: string[]): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
  const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
  for (const item of items) {
    if (item.endsWith('-') && !item.includes('=')) {
      const k = item.slice(0, -1);
      if (!KEY.test(k)) throw new UserError(`label key ${JSON.stringify(k)} is not valid`);
      remove.push(k);
      continue;
    }
    const eq = item.indexOf('=');
    const k = item.slice(0, eq);
    const v = item.slice(eq + 1);
    if (eq <= 0 || !KEY.test(k) || !VALUE.test(v)) {
      throw new UserError(`label ${JSON.stringify(item)}: expected key=value (or key- to remove), with Kubernetes label syntax`);
    }
    set[k] = v;
  }
  return { set, remove };
}
