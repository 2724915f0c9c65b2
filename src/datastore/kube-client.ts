/**
 * A small client of the Kubernetes REST API: JSON requests, and watch streams read as
 * newline-delimited JSON, over one keep-alive connection pool. Why not @kubernetes/client-node:
 * importing it costs a node process 73 MiB of RSS (115 against 42 MiB, its generated models
 * alone hold 32 MiB of heap) — more than the agent's whole budget (docs/benchmarks.md §3).
 * The tests drive the same API stand-in with client-node and kubectl, so both sides of the
 * protocol are checked against real clients.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { KubeConnection } from './kube-connection.js';

const REQUEST_TIMEOUT_MS = 30_000;
/** A bound service account token is refreshed by the kubelet long before it expires. */
const TOKEN_REREAD_MS = 60_000;
const MAX_BODY_BYTES = 256 << 20;

/** The API could not be reached, or did not answer in time. */
export class KubeUnreachableError extends Error {
  readonly code = 'ERR_KUBE_UNREACHABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeUnreachableError';
  }
}

/** An answer that is not 2xx, with the Status the server sent (reason, message). */
export class KubeStatusError extends Error {
  readonly code = 'ERR_KUBE_STATUS';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeStatusError';
  }
}

export interface KubeResponse {
  status: number;
  body: unknown;
}

/** The Status object's reason and message, or the status code's words. */
export function statusOf(status: number, body: unknown): { reason: string; message: string } {
  const b = typeof body === 'object' && body !== null ? (body as { reason?: unknown; message?: unknown }) : {};
  return { reason: typeof b.reason === 'string' ? b.reason : `HTTP ${status}`, message: typeof b.message === 'string' ? b.message : `the API answered ${status}` };
}

export class KubeClient {
  private readonly base: URL;
  /** A unix socket the server listens on (unix:///PATH), instead of host and port. */
  private readonly socketPath: string | undefined;
  private readonly send: typeof httpRequest;
  private readonly agent: HttpAgent;
  private token: string | undefined;
  private tokenReadAt = 0;

  constructor(
    private readonly conn: KubeConnection,
    private readonly userAgent = 'weft',
  ) {
    this.socketPath = conn.server.startsWith('unix://') ? conn.server.slice('unix://'.length) : undefined;
    this.base = new URL(this.socketPath !== undefined ? 'http://localhost' : conn.server);
    const tls = this.base.protocol === 'https:';
    this.send = tls ? httpsRequest : httpRequest;
    this.agent = tls
      ? new HttpsAgent({ keepAlive: true, maxSockets: 16, ...(conn.ca ? { ca: conn.ca } : {}), ...(conn.clientCert ? { cert: conn.clientCert, key: conn.clientKey } : {}), rejectUnauthorized: conn.insecureSkipTlsVerify !== true })
      : new HttpAgent({ keepAlive: true, maxSockets: 16 });
    this.token = conn.token;
  }

  get server(): string {
    return this.conn.server;
  }

  private authorization(): Record<string, string> {
    if (this.conn.tokenFile && Date.now() - this.tokenReadAt > TOKEN_REREAD_MS) {
      try {
        this.token = readFileSync(this.conn.tokenFile, 'utf8').trim();
        this.tokenReadAt = Date.now();
      } catch (err) {
        if (this.token === undefined) throw new KubeUnreachableError(`the token file ${this.conn.tokenFile} cannot be read: ${(err as Error).message}`);
      }
    }
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private url(path: string, query?: Record<string, string>): URL {
    const u = new URL(path, this.base);
    for (const [k, v] of Object.entries(query ?? {})) u.searchParams.set(k, v);
    return u;
  }

  private open(method: string, u: URL, headers: Record<string, string>, body: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.send(u, { method, agent: this.agent, ...(this.socketPath !== undefined ? { socketPath: this.socketPath } : {}), headers: { accept: 'application/json', 'user-agent': this.userAgent, ...this.authorization(), ...headers }, timeout: timeoutMs, ...(signal ? { signal } : {}) }, resolve);
      req.on('timeout', () => req.destroy(new KubeUnreachableError(`${method} ${u.pathname}: no answer from ${this.conn.server} within ${timeoutMs} ms`)));
      req.on('error', (err: Error) => reject(err instanceof KubeUnreachableError || err.name === 'AbortError' ? err : new KubeUnreachableError(`${method} ${u.pathname}: ${this.conn.server} unreachable: ${err.message}`, { cause: err })));
      req.end(body);
    });
  }

  /** One request; any status comes back (the caller decides what a 404 or 409 means). */
  async request(method: string, path: string, opts: { query?: Record<string, string>; body?: unknown; contentType?: string; timeoutMs?: number } = {}): Promise<KubeResponse> {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': opts.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    let res: IncomingMessage;
    try {
      res = await this.open(method, this.url(path, opts.query), headers, body, opts.timeoutMs ?? REQUEST_TIMEOUT_MS);
    } catch (err) {
      // A kept-alive connection the server (or a proxy) closed while idle fails the next request
      // sent on it: a read is safe to send once more, on a new connection.
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      if (method !== 'GET' || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw err;
      res = await this.open(method, this.url(path, opts.query), headers, body, opts.timeoutMs ?? REQUEST_TIMEOUT_MS);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > MAX_BODY_BYTES) throw new KubeUnreachableError(`${method} ${path}: answer larger than ${MAX_BODY_BYTES} bytes`);
        chunks.push(c);
      }
    } catch (err) {
      throw err instanceof KubeUnreachableError ? err : new KubeUnreachableError(`${method} ${path}: the answer broke off: ${(err as Error).message}`, { cause: err });
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    return { status: res.statusCode ?? 0, body: parsed };
  }

  /**
   * A watch: each JSON line of the answer goes to onEvent, until the server ends the stream
   * (resolves), the connection breaks (KubeUnreachableError), or the signal aborts (resolves).
   * A non-200 answer rejects with KubeStatusError; onOpen runs once the server accepted it.
   */
  async watch(path: string, query: Record<string, string>, signal: AbortSignal, onEvent: (event: unknown) => void, onOpen?: () => void): Promise<void> {
    let res: IncomingMessage;
    try {
      // No idle timeout: the server's timeoutSeconds ends a quiet stream, and the caller aborts
      // one that outlives it (a connection that died without a word).
      res = await this.open('GET', this.url(path, { ...query, watch: '1' }), {}, undefined, 0, signal);
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    if (res.statusCode !== 200) {
      const r = await collect(res).catch(() => '');
      let body: unknown;
      try {
        body = JSON.parse(r);
      } catch {
        body = undefined;
      }
      const s = statusOf(res.statusCode ?? 0, body);
      throw new KubeStatusError(res.statusCode ?? 0, s.reason, s.message);
    }
    onOpen?.();
    // Decoded as one stream: a character split across two chunks stays one character.
    res.setEncoding('utf8');
    let pending = '';
    try {
      for await (const c of res as AsyncIterable<string>) {
        pending += c;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line !== '') onEvent(JSON.parse(line) as unknown);
        }
        if (pending.length > MAX_BODY_BYTES) throw new KubeUnreachableError(`watch ${path}: an event larger than ${MAX_BODY_BYTES} bytes`);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof KubeUnreachableError || err instanceof KubeStatusError) throw err;
      throw new KubeUnreachableError(`watch ${path}: the stream broke off: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

async function collect(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
