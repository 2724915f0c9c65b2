/**
 * `weft ui`'s HTTP server (node:http, GET only): the page at /, JSON at /api/topology,
 * /api/matrix and /api/trace, and /events — server-sent events carrying the lab's topology when
 * it changes and every flow record as its node's agent reports it. It binds only the address it
 * is given and, on loopback, answers only requests whose Host names it (no DNS rebinding). It
 * has no authentication: what it shows is read-only, but anyone reaching it sees the cluster.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { labStatus, withLabStore } from '../lab/lab.js';
import { loadLab } from '../lab/lab-state.js';
import type { FlowRecord } from '../observe/flow.js';
import type { Snapshot } from '../policy/ir.js';
import { readSnapshot } from '../policy/load.js';
import { UserError } from '../util/user-error.js';
import { FlowFeed } from '../agent/flow-feed.js';
import { hostAllowed, isLoopback, listenUrl } from './listen.js';
import { PAGE_HTML, PAGE_SCRIPT, PAGE_STYLE } from './page.js';
import { matrixView, parseMatrixQuery, parseTraceQuery, topologyView, traceQueryOfFlow, traceView, type Topology } from './view.js';

export interface UiServerOptions {
  lab: string;
  host: string;
  port: number;
  /** How often the topology is read again (ms). */
  refreshMs?: number;
  /** Where problems reading the lab are reported (once per distinct message). */
  log?: (line: string) => void;
}

export interface UiServer {
  url: string;
  close(): Promise<void>;
}

const sha256 = (s: string): string => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;
/** Only the page's own style and script run; it talks to this server only. */
const CSP = `default-src 'none'; style-src ${sha256(PAGE_STYLE)}; script-src ${sha256(PAGE_SCRIPT)}; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
const SNAPSHOT_MAX_AGE_MS = 1000;
const HEARTBEAT_MS = 15_000;

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const refreshMs = o.refreshMs ?? 2000;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  loadLab(o.lab); // a lab that is not running is a UserError now, not a page of errors later

  let reported = '';
  const report = (msg: string): void => {
    if (msg !== reported) log(`weft ui: ${msg}`);
    reported = msg;
  };

  // The policy snapshot, read again when older than a second: a page's burst of requests reads it once.
  let snap: { at: number; value: Promise<{ snapshot: Snapshot; problems: string[] }> } | undefined;
  const snapshot = (): Promise<{ snapshot: Snapshot; problems: string[] }> => {
    if (!snap || Date.now() - snap.at > SNAPSHOT_MAX_AGE_MS) {
      const value = withLabStore(loadLab(o.lab), readSnapshot);
      snap = { at: Date.now(), value };
      value.catch(() => (snap = undefined));
    }
    return snap.value;
  };

  const feed = new FlowFeed({ historyMs: 10 * 60_000, keep: 500, retryMs: 1000 });
  const clients = new Set<ServerResponse>();
  const send = (res: ServerResponse, event: string, data: string): void => {
    res.write(`event: ${event}\ndata: ${data}\n\n`);
  };
  const flowEvent = (r: FlowRecord): string => JSON.stringify({ record: r, trace: traceQueryOfFlow(r) });

  let topology: { json: string; value: Topology } | undefined;
  const readTopology = async (): Promise<Topology> => {
    const state = loadLab(o.lab);
    feed.sync(state.nodes.map((n) => ({ name: n.name, socket: n.socket })));
    const [status, snapped] = await Promise.all([labStatus(o.lab), snapshot()]);
    return topologyView(status, snapped.snapshot, snapped.problems);
  };
  const refresh = async (): Promise<void> => {
    try {
      const value = await readTopology();
      const json = JSON.stringify(value);
      reported = '';
      if (json === topology?.json) return;
      topology = { json, value };
      for (const c of clients) send(c, 'topology', json);
    } catch (err) {
      report(`cannot read lab ${o.lab}: ${(err as Error).message}`);
    }
  };
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const bound = server.address() as AddressInfo;
    if (isLoopback(o.host) && !hostAllowed(req.headers.host, { host: o.host, port: bound.port })) return json(res, 403, { error: 'this server answers only requests addressed to it (Host header)' });
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return json(res, 405, { error: 'only GET' });
    }
    const url = new URL(req.url ?? '/', 'http://ui.invalid');
    switch (url.pathname) {
      case '/':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' });
        res.end(PAGE_HTML);
        return;
      case '/api/topology':
        return json(res, 200, topology?.value ?? (await readTopology()));
      case '/api/matrix': {
        const q = parseMatrixQuery(url.searchParams);
        return json(res, 200, matrixView((await snapshot()).snapshot, q));
      }
      case '/api/trace': {
        const q = parseTraceQuery(url.searchParams);
        return json(res, 200, traceView((await snapshot()).snapshot, q));
      }
      case '/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
        res.write('retry: 2000\n\n');
        send(res, 'reset', '{}');
        if (topology) send(res, 'topology', topology.json);
        for (const r of feed.history()) send(res, 'flow', flowEvent(r));
        clients.add(res);
        req.on('close', () => clients.delete(res));
        return;
      }
      default:
        return json(res, 404, { error: `no such page: ${url.pathname}` });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err as Error;
      if (!res.headersSent) json(res, err instanceof UserError ? 400 : 500, { error: e.message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new UserError(`cannot listen on ${o.host}:${o.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EADDRNOTAVAIL' ? 'no interface of this machine has that address' : err.message}`)));
    server.listen(o.port, o.host, () => resolve());
  });
  // Listening first: a port in use is reported before anything is started.
  const unsubscribe = feed.subscribe((r) => {
    const data = flowEvent(r);
    for (const c of clients) send(c, 'flow', data);
  });
  await refresh();
  let refreshing = false;
  const timer = setInterval(() => {
    if (refreshing) return;
    refreshing = true;
    void refresh().finally(() => (refreshing = false));
  }, refreshMs);
  const heartbeat = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n');
  }, HEARTBEAT_MS);

  const bound = server.address() as AddressInfo;
  return {
    url: listenUrl(o.host, bound.port),
    close: async () => {
      clearInterval(timer);
      clearInterval(heartbeat);
      unsubscribe();
      feed.close();
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
