/**
 * Where the Kubernetes API is and how to authenticate to it: in a pod, the service account
 * (KUBERNETES_SERVICE_HOST/PORT, the token and CA the kubelet mounts); outside, a kubeconfig
 * file's current context. Supported credentials: a bearer token (inline or a file, re-read
 * because bound service account tokens rotate) and a client certificate. Exec plugins and auth
 * providers (cloud logins) are refused with a message: an agent must not run programs to log in.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { UserError } from '../util/user-error.js';

export interface KubeConnection {
  /** https://host:port (or http:// for a local test server, unix:///PATH for the lab's). */
  server: string;
  /** PEM: the CA to trust; absent: the system's. */
  ca?: string;
  insecureSkipTlsVerify?: boolean;
  token?: string;
  /** Read again at most once a minute. */
  tokenFile?: string;
  clientCert?: string;
  clientKey?: string;
  /** Where this came from, for messages. */
  source: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The service account's connection, when running in a pod; undefined otherwise. */
export function inClusterConnection(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeConnection | undefined {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (!host) return undefined;
  let ca: string;
  try {
    ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  } catch (err) {
    throw new UserError(`in a pod (KUBERNETES_SERVICE_HOST is set) but the service account's CA cannot be read: ${(err as Error).message}`);
  }
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca, tokenFile: join(dir, 'token'), source: 'the pod\'s service account' };
}

function pick(list: unknown, name: unknown, what: 'context' | 'cluster' | 'user', file: string): Record<string, unknown> {
  const entries = Array.isArray(list) ? (list as unknown[]) : [];
  const found = entries.find((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && (e as Record<string, unknown>)['name'] === name);
  if (!found) throw new UserError(`kubeconfig ${file}: no ${what} named ${JSON.stringify(name)}`);
  const inner = found[what];
  if (typeof inner !== 'object' || inner === null) throw new UserError(`kubeconfig ${file}: ${what} ${JSON.stringify(name)} is empty`);
  return inner as Record<string, unknown>;
}

/** Inline base64 data, or a file (relative paths are relative to the kubeconfig's directory). */
function material(o: Record<string, unknown>, dataKey: string, fileKey: string, file: string): string | undefined {
  const data = o[dataKey];
  if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64').toString('utf8');
  const path = o[fileKey];
  if (typeof path === 'string' && path !== '') {
    const full = isAbsolute(path) ? path : join(dirname(file), path);
    try {
      return readFileSync(full, 'utf8');
    } catch (err) {
      throw new UserError(`kubeconfig ${file}: ${fileKey} ${full} cannot be read: ${(err as Error).message}`);
    }
  }
  return undefined;
}

/** The current context of a kubeconfig file (pure but for reading the files it names). */
export function kubeconfigConnection(file: string, text?: string): KubeConnection {
  let doc: unknown;
  try {
    doc = parse(text ?? readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`kubeconfig ${file} cannot be read: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new UserError(`kubeconfig ${file}: not a kubeconfig (expected a YAML mapping)`);
  const d = doc as Record<string, unknown>;
  const ctxName = d['current-context'];
  if (typeof ctxName !== 'string' || ctxName === '') throw new UserError(`kubeconfig ${file}: no current-context`);
  const ctx = pick(d['contexts'], ctxName, 'context', file);
  const cluster = pick(d['clusters'], ctx['cluster'], 'cluster', file);
  const user = ctx['user'] === undefined ? {} : pick(d['users'], ctx['user'], 'user', file);
  const server = cluster['server'];
  // unix:///PATH is Weft's own extension (plain HTTP on a unix socket): the lab's API stand-in.
  if (typeof server !== 'string' || !/^(https?:\/\/[^/]+\/?|unix:\/\/\/.+)$/.test(server)) throw new UserError(`kubeconfig ${file}: cluster ${JSON.stringify(ctx['cluster'])} has no usable server (expected https://HOST:PORT, got ${JSON.stringify(server)})`);
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    throw new UserError(`kubeconfig ${file}: user ${JSON.stringify(ctx['user'])} logs in through ${user['exec'] !== undefined ? 'an exec plugin' : 'an auth provider'}, which weft does not run: give it a token (a service account's) or a client certificate`);
  }
  const conn: KubeConnection = { server: server.startsWith('unix:') ? server : server.replace(/\/$/, ''), source: `kubeconfig ${file}` };
  const ca = material(cluster, 'certificate-authority-data', 'certificate-authority', file);
  if (ca) conn.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) conn.insecureSkipTlsVerify = true;
  if (typeof user['token'] === 'string' && user['token'] !== '') conn.token = user['token'];
  if (typeof user['tokenFile'] === 'string' && user['tokenFile'] !== '') conn.tokenFile = isAbsolute(user['tokenFile']) ? user['tokenFile'] : join(dirname(file), user['tokenFile']);
  const cert = material(user, 'client-certificate-data', 'client-certificate', file);
  const key = material(user, 'client-key-data', 'client-key', file);
  if (cert && key) {
    conn.clientCert = cert;
    conn.clientKey = key;
  }
  return conn;
}

/** --kubeconfig, else KUBECONFIG (its first file), else the pod's service account, else ~/.kube/config. */
export function findKubeConnection(kubeconfig: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConnection {
  if (kubeconfig) return kubeconfigConnection(kubeconfig);
  const fromEnv = env['KUBECONFIG']?.split(':').find((f) => f !== '');
  if (fromEnv) return kubeconfigConnection(fromEnv);
  const pod = inClusterConnection(env);
  if (pod) return pod;
  const home = env['HOME'];
  if (home) {
    try {
      return kubeconfigConnection(join(home, '.kube', 'config'));
    } catch (err) {
      if (!/cannot be read/.test((err as Error).message)) throw err;
    }
  }
  throw new UserError('--datastore kubernetes: no Kubernetes API to talk to: give --kubeconfig FILE (or KUBECONFIG), or run in a pod with a service account');
}
