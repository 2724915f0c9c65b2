import { podUidProblem } from '../cni/args.js';
import { parseDns, parseResult } from '../cni/convert.js';
import { validateContainerId, validateIfName } from '../cni/env.js';
import { validateNetworkName } from '../cni/netconf.js';
import { isValidAddress } from '../ipam/cidr.js';
import { labelKeyProblem, labelValueProblem } from '../model/field-errors.js';
import { dnsLabelProblem, dnsSubdomainProblem } from '../util/dns-names.js';
import { CniError, ErrorCode, type ErrorCodeValue } from '../cni/errors.js';
import type { AttachmentKey } from '../cni/netconf.js';
import type { DnsConfig, Result } from '../cni/result.js';
import { isSupportedVersion } from '../cni/version.js';
import { FILE_ID, type HeldNetns } from '../kernel/netns.js';

/**
 * The contract between the plugin executable (native/weft-cni.c, a forwarder) and the agent:
 * HTTP over a root-only unix socket. The forwarder sends one plugin execution as it came — the
 * CNI_* environment and stdin, base64 in a JSON body, and the pod's netns as an fd it holds
 * open (pid + fd, opened by the agent as /proc/PID/fd/FD) — and prints the answer: the body is
 * stdout, the x-cni-exit header the exit status. Every CNI rule is applied here, in the agent.
 *
 * The constants below are the forwarder's too: scripts/bundle.mjs writes them into its header
 * (with the words for a config that is not JSON, cni/netconf.ts, which it must say itself: it
 * cannot find the agent's socket in such a config).
 */
export const EXEC_PATH = '/v1/exec';
export const HEALTH_PATH = '/v1/health';
/**
 * GET: the node's flow records, one JSON object per line (src/observe/flow.ts). `?since=MS`
 * (ms since the epoch) only those from then; `?follow=1` keeps the answer open with each new one.
 */
export const FLOWS_PATH = '/v1/flows';
/** POST: the node makes a new WireGuard key pair and publishes it (`weft node rotate-key`). */
export const ROTATE_KEY_PATH = '/v1/rotate-key';

/** The answer to a key rotation: the new public key, or why there was none. */
export type RotateKeyReply = { ok: true; publicKey: string } | { ok: false; error: string };
/**
 * Node flags the agent is started with (by the lab, the test sandbox, and the install manifests
 * to come). A semi-space of at most 1 MiB keeps V8's young generation from growing to tens of
 * MiB under bursts of CNI calls and staying there: 9-11 KiB of RSS per additional pod against
 * 21-23 KiB with node's default (100 -> 1000 pods; docs/benchmarks.md section 3). It costs a
 * policy sync at 1,000 policies x 5,000 endpoints ~25% more CPU (a change: 91 against 72 ms,
 * medians of three runs each). One V8 worker thread instead of four: 0.5 MiB idle and 1.5 MiB at
 * 1,000 pods less (the threads' stacks and malloc arenas), and no slower policy sync on a heap
 * this small (68.5-81 against 74-94 ms a change, two runs each).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--v8-pool-size=1'];

export const DEFAULT_SOCKET = '/run/weft/cni.sock';
/** The largest request the agent reads: a config with its prevResult is kilobytes. */
export const MAX_REQUEST_BYTES = 2 << 20;
/** What the forwarder reads of stdin, and how long it waits for stdin to close. */
export const STDIN_LIMIT_BYTES = 1 << 20;
export const STDIN_TIMEOUT_MS = 10_000;
/** How long the forwarder waits for the agent's answer (an ADD waits ≤ 10 s for its policy). */
export const AGENT_TIMEOUT_MS = 120_000;
export const STDIN_MESSAGES = {
  tooLarge: `error reading network config from stdin: the network configuration on stdin is larger than ${STDIN_LIMIT_BYTES} bytes (1 MiB), the most Weft reads`,
  timeout: `error reading network config from stdin: stdin was not closed within ${STDIN_TIMEOUT_MS / 1000} s (the network configuration must be written and stdin closed)`,
} as const;

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
  /** The pod's netns as the forwarder holds it open: the agent opens /proc/PID/fd/FD. */
  netnsFd?: HeldNetns;
  /** Why the forwarder could not open CNI_NETNS (an errno name such as ENOENT). */
  netnsErrno?: string;
}

export interface CniReply {
  result?: Result;
}

/** Flow recording on a node (health's `flows`). */
export interface FlowsStatus {
  reader: 'starting' | 'running' | 'restarting' | 'stopped';
  records: number;
  capacity: number;
  seen: number;
  /** Records the ring overwrote. */
  overwritten: number;
  /** Messages the kernel dropped because the reader was behind (its socket buffer full). */
  kernelLost: number;
  readerRestarts: number;
  error?: string;
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
  flows?: FlowsStatus;
  /** Where Prometheus scrapes this agent, or why it cannot. */
  metrics?: { url?: string; error?: string };
  mtu: number;
  /** Objects in the datastore this agent leaves out because they are not usable, one line each. */
  rejected?: string[];
}

/** A cluster member's view, in the health answer. `peers` are the nodes it has routes to. */
export interface ClusterStatus {
  node: string;
  backend: string;
  blocks: string[];
  peers: string[];
  problems: string[];
  datastoreConnected: boolean;
  /** Peers whose agent is not renewing its lease (still routed: a crashed agent is not a dead node). */
  silentAgents: Array<{ node: string; lastSeen?: string | undefined; silentSeconds?: number | undefined }>;
  /** How long an agent may stay silent before its node counts as gone (0: never). */
  nodeGraceSeconds: number;
  /** Where the cluster encrypts: the WireGuard device, its data plane and its peers. */
  encryption?: {
    type: 'wireguard';
    implementation: 'kernel' | 'wireguard-go' | undefined;
    device: string;
    publicKey: string;
    port: number;
    peers: Array<{ node: string; handshakeSecondsAgo?: number }>;
  };
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

/** The same words the plugin would use, with the code it would give: the socket is an API too. */
function refuse(code: ErrorCodeValue, msg: string, details?: string): never {
  throw new CniError(code, msg, details);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Longest string field accepted: a path (PATH_MAX); everything else is far shorter. */
const MAX_STRING = 4096;

function str(o: Record<string, unknown>, k: string, required: boolean): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) {
    if (required) bad(`"${k}" is required`);
    return undefined;
  }
  if (typeof v !== 'string') bad(`"${k}" must be a string`);
  if (v.length > MAX_STRING || v.includes('\0')) bad(`"${k}" must be at most ${MAX_STRING} characters, without NUL`);
  return v;
}

const COMMANDS: readonly AgentCommand[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS'];

/**
 * The pod a request is for, held to Kubernetes' rules (the plugin's, cni/args.ts): these name
 * datastore objects. Names that are not Kubernetes names mean no pod identity, never a path.
 */
function parsePod(v: unknown): PodIdentity {
  if (!isObject(v)) bad('"pod" must be an object');
  const pod: PodIdentity = {};
  const namespace = str(v, 'namespace', false);
  const name = str(v, 'name', false);
  const uid = str(v, 'uid', false);
  if (namespace !== undefined && !dnsLabelProblem(namespace)) pod.namespace = namespace;
  if (name !== undefined && !dnsSubdomainProblem(name)) pod.name = name;
  if (uid !== undefined && !podUidProblem(uid)) pod.uid = uid;
  if (v['labels'] !== undefined) {
    const labels = v['labels'];
    if (!isObject(labels)) bad('"pod.labels" must map strings to strings');
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(labels)) {
      if (typeof val !== 'string') bad('"pod.labels" must map strings to strings');
      const why = labelKeyProblem(k) ?? labelValueProblem(val);
      if (why) refuse(ErrorCode.InvalidNetworkConfig, `args.cni.labels: ${JSON.stringify(k)}=${JSON.stringify(val)} is not a valid label: ${why}`);
      out[k] = val;
    }
    pod.labels = out;
  }
  return pod;
}

/**
 * Checks a request body from the socket with the plugin's rules (the spec's container-id and
 * interface-name rules, network names, CNI_ARGS values, addresses): whoever writes to the socket,
 * nothing unchecked reaches a file name, a datastore key or a kernel command.
 */
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
    network: validateNetworkName(str(body, 'network', true)),
    containerId: str(body, 'containerId', attachment) ?? '',
    ifName: str(body, 'ifName', attachment) ?? '',
    netns: str(body, 'netns', false) ?? '',
    requestedIps: [],
  };
  if (attachment || req.containerId !== '') validateContainerId(req.containerId);
  if (attachment || req.ifName !== '') validateIfName(req.ifName);
  if ((command === 'ADD' || command === 'CHECK') && req.netns === '') refuse(ErrorCode.InvalidEnvironment, 'required env variables [CNI_NETNS] missing');
  const ips = body['requestedIps'];
  if (ips !== undefined) {
    if (!Array.isArray(ips) || ips.some((i) => typeof i !== 'string') || ips.length > 8) bad('"requestedIps" must be a list of at most 8 strings');
    // An address, or ADDRESS/PREFIX as the ips capability convention writes it.
    for (const ip of ips as string[]) if (!isValidAddress(ip.replace(/\/\d{1,3}$/, ''))) refuse(ErrorCode.InvalidNetworkConfig, `requested address ${JSON.stringify(ip)} is not an IP address`);
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
  if (body['dns'] !== undefined) {
    const dns = parseDns(body['dns'], 'the agent request');
    if (dns) req.dns = dns;
  }
  if (body['prevResult'] !== undefined) req.prevResult = parseResult(body['prevResult'], '1.1.0');
  if (body['pod'] !== undefined) req.pod = parsePod(body['pod']);
  const fd = body['netnsFd'];
  if (fd !== undefined) {
    const f = fd as { pid?: unknown; fd?: unknown; file?: unknown };
    const ok =
      typeof f === 'object' && f !== null && Number.isInteger(f.pid) && Number.isInteger(f.fd) && (f.pid as number) >= 1 && (f.fd as number) >= 0 && (f.fd as number) <= 1 << 20;
    if (!ok || typeof f.file !== 'string' || !FILE_ID.test(f.file)) {
      bad('"netnsFd" must be {"pid": a process id, "fd": a descriptor number, "file": "DEV:INO"}');
    }
    req.netnsFd = { pid: f.pid as number, fd: f.fd as number, file: f.file };
  }
  const errno = body['netnsErrno'];
  if (errno !== undefined) {
    if (typeof errno !== 'string' || !/^E[A-Z]{1,15}$/.test(errno)) bad('"netnsErrno" must be an errno name such as ENOENT');
    req.netnsErrno = errno;
  }
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
