import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { asCniError, CniError, ErrorCode } from '../cni/errors.js';
import type { Logger } from '../util/log.js';
import { printable } from '../util/printable.js';
import type { FlowListener } from '../observe/flow-ring.js';
import type { AgentMetrics } from './metrics.js';
import { METRICS_PATH } from './metrics-server.js';
import type { FlowRecord } from '../observe/flow.js';
import { EXEC_PATH, FLOWS_PATH, HEALTH_PATH, MAX_REQUEST_BYTES, ROTATE_KEY_PATH, type HealthReply, type RotateKeyReply } from './api.js';
import { parseExecution, runExecution } from './exec.js';
import type { CniService } from './cni-service.js';
import { DOCTOR_PATH, type DoctorView } from './doctor-view.js';

/**
 * The agent's side of the plugin socket: HTTP/1.1, one JSON request per CNI call.
 *
 * A request bigger than MAX_REQUEST_BYTES is refused with a non-retryable error that names the
 * limit — read to its end first, so the client gets that answer rather than a broken pipe it
 * would take for "agent down, retry". Past DRAIN_LIMIT_BYTES it is dropped unread.
 */
const DRAIN_LIMIT_BYTES = 64 << 20;

/** Limits of the socket: a hung or leaking client cannot hold the agent's connections. */
export const SOCKET_LIMITS = {
  /** Connections open at once; more are refused until some close. */
  maxConnections: 128,
  /** A new connection must start its request within this; an idle kept-alive one is closed after it. */
  firstRequestMs: 5_000,
  keepAliveTimeoutMs: 2_000,
  /** Request headers must be complete within this, the whole request within the next. */
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 15_000,
  /** While a request is served: silence for this long (longer than any CNI call takes) closes it. */
  busyTimeoutMs: 130_000,
} as const;

/** The forwarder's answer: the body is the plugin's stdout, x-cni-exit its exit status. */
function answer(res: ServerResponse, status: number, exitCode: number, stdout: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(stdout), 'x-cni-exit': String(exitCode) });
  res.end(stdout);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > DRAIN_LIMIT_BYTES) {
      req.destroy();
      break;
    }
    if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
  }
  if (size > MAX_REQUEST_BYTES) {
    throw new CniError(ErrorCode.IoFailure, `the request is ${size > DRAIN_LIMIT_BYTES ? 'more than 64 MiB' : `${size} bytes`}; the agent accepts at most ${MAX_REQUEST_BYTES} bytes (2 MiB)`, 'a network configuration this large is not one Weft can take');
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new CniError(ErrorCode.DecodingFailure, `request body is not JSON: ${(err as Error).message}`);
  }
}

export interface AgentServerOptions {
  socketPath: string;
  service: CniService;
  health: () => HealthReply;
  /** A new WireGuard key pair, published (`force`: even while a peer's agent is silent). */
  rotateKey?: (force: boolean) => Promise<RotateKeyReply>;
  /** The agent's metrics: fed with each CNI request, and served on the socket too (GET /metrics). */
  metrics?: () => AgentMetrics | undefined;
  /** The node's flow records (absent: flow recording is off). */
  flows?: { list(sinceMs?: number): FlowRecord[]; subscribe(l: FlowListener): () => void };
  /** What the node's kernel should hold, for `weft doctor`. */
  doctor?: () => DoctorView;
  log: Logger;
}

/** A follower that reads slower than flows come is cut off past this much unsent output. */
const FOLLOW_BACKLOG_BYTES = 4 << 20;
/** An empty line this often keeps a quiet follow stream from looking dead to proxies and clients. */
const FOLLOW_HEARTBEAT_MS = 15_000;

/** Records kept for a follower while its backlog is written; past it, it is cut off. */
const QUEUE_LIMIT = 10_000;
/** Followers at once: each holds one of the socket's connections, which CNI calls need. */
const MAX_FOLLOWERS = 16;

/** Lines written in pieces that wait for the socket to drain: a large ring is never one string. */
async function writeLines(res: ServerResponse, records: FlowRecord[]): Promise<void> {
  const PIECE = 256;
  for (let i = 0; i < records.length && !res.destroyed; i += PIECE) {
    const text = records.slice(i, i + PIECE).map((r) => `${JSON.stringify(r)}\n`).join('');
    if (!res.write(text)) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
  }
}

/** The followers of one server's flows (per server: a process may serve several agents, as tests do). */
interface Followers {
  count: number;
}

async function serveFlows(req: IncomingMessage, res: ServerResponse, url: URL, flows: AgentServerOptions['flows'], followers: Followers): Promise<void> {
  if (!flows) {
    send(res, 404, { error: 'flow recording is off on this node (the agent runs with --flows off)' });
    return;
  }
  const sinceText = url.searchParams.get('since');
  const since = sinceText === null ? undefined : Number(sinceText);
  if (since !== undefined && !Number.isFinite(since)) {
    send(res, 400, { error: `since=${printable(sinceText ?? '')}: expected milliseconds since the epoch` });
    return;
  }
  const follow = url.searchParams.get('follow') === '1';
  if (follow && followers.count >= MAX_FOLLOWERS) {
    send(res, 503, { error: `${MAX_FOLLOWERS} readers already follow this node's flows; try again when one stops` });
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  if (!follow) {
    await writeLines(res, flows.list(since));
    res.end();
    return;
  }
  followers.count++;
  // Following has no end: the socket's busy timeout does not apply, the heartbeat keeps it honest.
  req.socket.setTimeout(0);
  // Records that come while the backlog is written wait their turn, in order.
  const queued: FlowRecord[] = [];
  let live = false;
  const unsubscribe = flows.subscribe((r) => {
    if (!live) {
      queued.push(r);
      if (queued.length > QUEUE_LIMIT) res.destroy();
      return;
    }
    res.write(`${JSON.stringify(r)}\n`);
    if (res.writableLength > FOLLOW_BACKLOG_BYTES) res.destroy();
  });
  const heartbeat = setInterval(() => res.write('\n'), FOLLOW_HEARTBEAT_MS);
  res.once('close', () => {
    followers.count--;
    unsubscribe();
    clearInterval(heartbeat);
  });
  res.write('\n');
  await writeLines(res, flows.list(since));
  await writeLines(res, queued);
  live = true;
}

/** Is something answering on this unix socket? */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The socket's directory: made 0700, and made so again when it exists — unless it is a
 * directory others share (world-writable, sticky like /tmp, or not root's), where changing its
 * mode would break them and keeping it would let others replace the socket.
 */
async function prepareSocketDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fs.stat(dir);
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid || (st.mode & 0o1002) !== 0 || dir === '/' || ['/run', '/var/run', '/tmp', '/var/tmp', '/dev/shm'].includes(dir)) {
    throw new Error(`the socket's directory ${dir} is shared (${st.uid !== uid ? `owned by uid ${st.uid}` : (st.mode & 0o1002) !== 0 ? 'writable by others' : 'a system directory'}): give --socket a path in a directory of its own, e.g. /run/weft/cni.sock`);
  }
  if ((st.mode & 0o777) !== 0o700) await fs.chmod(dir, 0o700);
}

/** Serves the plugin's requests on a unix socket only root can open (mode 0600 from the start). */
export async function startAgentServer(opts: AgentServerOptions): Promise<Server> {
  const { socketPath, service, log } = opts;
  await prepareSocketDir(dirname(socketPath));
  if (await socketAlive(socketPath)) {
    throw new Error(`another agent is already serving ${socketPath}; stop it or choose another --socket`);
  }
  await fs.rm(socketPath, { force: true });

  const server = createServer(
    {
      headersTimeout: SOCKET_LIMITS.headersTimeoutMs,
      requestTimeout: SOCKET_LIMITS.requestTimeoutMs,
      keepAliveTimeout: SOCKET_LIMITS.keepAliveTimeoutMs,
      // How often those limits are checked (node's default is every 30 s).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      void handle(req, res);
    },
  );
  server.maxConnections = SOCKET_LIMITS.maxConnections;
  // node's header timeout starts with the first byte: a connection that never sends one would
  // be held until the busy timeout. (A socket timeout with no listener of ours is a destroy.)
  server.on('connection', (socket) => socket.setTimeout(SOCKET_LIMITS.firstRequestMs));
  const followers: Followers = { count: 0 };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    req.socket.setTimeout(SOCKET_LIMITS.busyTimeoutMs);
    try {
      if (req.method === 'GET' && req.url === HEALTH_PATH) {
        send(res, 200, opts.health());
        return;
      }
      if (req.method === 'GET' && req.url === DOCTOR_PATH && opts.doctor) {
        send(res, 200, opts.doctor());
        return;
      }
      const url = new URL(req.url ?? '/', 'http://agent');
      const metrics = opts.metrics?.();
      if (req.method === 'GET' && url.pathname === METRICS_PATH && metrics) {
        const text = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      if (req.method === 'GET' && url.pathname === FLOWS_PATH) {
        await serveFlows(req, res, url, opts.flows, followers);
        return;
      }
      if (req.method === 'POST' && url.pathname === ROTATE_KEY_PATH) {
        const force = url.searchParams.get('force') === 'true';
        const reply: RotateKeyReply = opts.rotateKey
          ? await opts.rotateKey(force).catch((err: Error): RotateKeyReply => ({ ok: false, error: err.message }))
          : { ok: false, error: 'this node does not encrypt: the cluster was created without --encryption wireguard' };
        if (!reply.ok) log.warn('key rotation failed', { error: reply.error });
        send(res, reply.ok ? 200 : 409, reply);
        return;
      }
      if (req.method !== 'POST' || req.url !== EXEC_PATH) {
        send(res, 404, { code: ErrorCode.InvalidEnvironment, msg: `no such endpoint: ${req.method} ${printable(req.url ?? '')}`, details: `use POST ${EXEC_PATH} or GET ${HEALTH_PATH}` });
        return;
      }
      const execution = parseExecution(await readBody(req));
      const started = process.hrtime.bigint();
      const out = await runExecution(execution, (r) => service.handle(r));
      const e = out.error;
      if (e && (e.code === ErrorCode.Internal || e.code === ErrorCode.KernelFailure)) {
        log.error('request failed', { code: e.code, msg: e.message, stack: e.cause instanceof Error ? e.cause.stack : e.stack });
      }
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.debug('request', { command: execution.env['CNI_COMMAND'], containerId: execution.env['CNI_CONTAINERID'], exit: out.exitCode, ms });
      // The verb as a label only when it is one (a bogus CNI_COMMAND must not mint series).
      const verb = execution.env['CNI_COMMAND'] ?? '';
      metrics?.cniRequest(['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'].includes(verb) ? verb : 'other', out.exitCode === 0, ms / 1000);
      answer(res, 200, out.exitCode, out.stdout);
    } catch (err) {
      // An answer already under way (a flow stream) can only be cut off.
      if (res.headersSent) {
        log.warn('an answer failed midway', { path: printable(req.url ?? ''), error: (err as Error).message });
        res.destroy();
        return;
      }
      // The request itself was unusable (too large, not JSON, not the forwarder's shape).
      answer(res, 400, 1, JSON.stringify(asCniError(err).toObject()));
    }
  };

  // 0600 before anyone can reach it: bound inside a fresh 0700 directory of its own, made
  // 0600 there, then renamed into place (a process-wide umask would touch the agent's other
  // files created meanwhile; a chmod after listening would leave a window).
  const staging = await fs.mkdtemp(join(dirname(socketPath), '.weft-sock-'));
  try {
    const staged = join(staging, 's');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(staged, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await fs.chmod(staged, 0o600);
    await fs.rename(staged, socketPath);
  } catch (err) {
    server.close();
    throw err;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
  return server;
}
