import { parseResult } from '../cni/convert.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import type { AttachmentKey } from '../cni/netconf.js';
import type { DnsConfig, Result } from '../cni/result.js';
import { isSupportedVersion } from '../cni/version.js';

/**
 * The contract between the thin plugin and the agent: HTTP+JSON over a root-only unix socket.
 * The plugin sends an already-parsed request; the agent checks it again (it is an API) and
 * answers with a result in the newest schema, or a CNI error object.
 */
export const CNI_PATH = '/v1/cni';
export const HEALTH_PATH = '/v1/health';
export const DEFAULT_SOCKET = '/run/weft/cni.sock';

export type AgentCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';

export interface PodIdentity {
  namespace?: string;
  name?: string;
  uid?: string;
  labels?: Record<string, string>;
}

export interface CniRequest {
  command: AgentCommand;
  cniVersion: string;
  network: string;
  containerId: string;
  ifName: string;
  netns: string;
  /** Requested addresses (at most one per family) and where they came from, for error messages. */
  requestedIps: string[];
  requestedIpsSource?: string;
  mac?: string;
  macSource?: string;
  mtu?: number;
  dns?: DnsConfig;
  prevResult?: Result;
  pod?: PodIdentity;
  validAttachments?: AttachmentKey[];
}

export interface CniReply {
  result?: Result;
}

export interface HealthReply {
  ok: boolean;
  pools: Array<{ family: number; cidr: string; size: string; used: number; free: string }>;
  attachments: number;
  /** process.memoryUsage() of the agent, bytes. */
  memory: { rss: number; heapUsed: number; heapTotal: number; external: number };
  /** Present when the agent is a member of a cluster. */
  cluster?: ClusterStatus;
  /** Present when the agent enforces network policy. */
  policy?: PolicyStatus;
  mtu: number;
}

/** A cluster member's view, in the health answer. `peers` are the nodes it has routes to. */
export interface ClusterStatus {
  node: string;
  backend: string;
  blocks: string[];
  peers: string[];
  problems: string[];
  datastoreConnected: boolean;
}

/** Policy enforcement on this node. */
export interface PolicyStatus {
  /** Digest of the objects the applied table was compiled from: equal on converged nodes. */
  fingerprint?: string;
  syncs: number;
  size?: { chains: number; rules: number; sets: number; elements: number };
  lastSyncMs?: number;
  /** Objects that are ignored because they are invalid. */
  problems: string[];
  error?: string;
}

function bad(msg: string): never {
  throw new CniError(ErrorCode.DecodingFailure, `invalid agent request: ${msg}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, k: string, required: boolean): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) {
    if (required) bad(`"${k}" is required`);
    return undefined;
  }
  if (typeof v !== 'string') bad(`"${k}" must be a string`);
  return v;
}

const COMMANDS: readonly AgentCommand[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS'];

/** Checks a request body from the socket. */
export function parseCniRequest(body: unknown): CniRequest {
  if (!isObject(body)) bad('the body must be a JSON object');
  const command = str(body, 'command', true) as string;
  if (!(COMMANDS as readonly string[]).includes(command)) bad(`unknown command "${command}"`);
  const cniVersion = str(body, 'cniVersion', true) as string;
  if (!isSupportedVersion(cniVersion)) bad(`unsupported cniVersion "${cniVersion}"`);
  const attachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const req: CniRequest = {
    command: command as AgentCommand,
    cniVersion,
    network: str(body, 'network', true) as string,
    containerId: str(body, 'containerId', attachment) ?? '',
    ifName: str(body, 'ifName', attachment) ?? '',
    netns: str(body, 'netns', false) ?? '',
    requestedIps: [],
  };
  const ips = body['requestedIps'];
  if (ips !== undefined) {
    if (!Array.isArray(ips) || ips.some((i) => typeof i !== 'string')) bad('"requestedIps" must be a list of strings');
    req.requestedIps = ips as string[];
  }
  for (const k of ['requestedIpsSource', 'mac', 'macSource'] as const) {
    const v = str(body, k, false);
    if (v !== undefined) req[k] = v;
  }
  if (body['mtu'] !== undefined) {
    const m = body['mtu'];
    if (typeof m !== 'number' || !Number.isInteger(m)) bad('"mtu" must be an integer');
    req.mtu = m;
  }
  if (isObject(body['dns'])) req.dns = body['dns'] as DnsConfig;
  if (body['prevResult'] !== undefined) req.prevResult = parseResult(body['prevResult'], '1.1.0');
  if (isObject(body['pod'])) req.pod = body['pod'] as PodIdentity;
  const valid = body['validAttachments'];
  if (valid !== undefined) {
    if (!Array.isArray(valid)) bad('"validAttachments" must be a list');
    req.validAttachments = valid.map((a) => {
      if (!isObject(a) || typeof a['containerId'] !== 'string' || typeof a['ifName'] !== 'string') {
        bad('each valid attachment needs "containerId" and "ifName"');
      }
      return { containerId: a['containerId'] as string, ifName: a['ifName'] as string };
    });
  }
  return req;
}
