/**
 * Where Prometheus scrapes the agent: plain HTTP on --metrics-address (default a loopback port,
 * so nothing is exposed unless asked), GET /metrics only. A scrape never blocks the agent's other
 * work beyond reading its state; a failed collection answers 500 with the reason.
 */
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { UserError } from '../util/user-error.js';
import type { Logger } from '../util/log.js';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9476';
export const METRICS_PATH = '/metrics';

/** "HOST:PORT" or "[V6]:PORT" → host and port; "" means off (undefined). */
export function parseMetricsAddress(text: string): { host: string; port: number } | undefined {
  if (text === '') return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !isIP(host) || port < 1 || port > 65535 || (m[1] !== undefined && isIP(host) !== 6)) {
    throw new UserError(`--metrics-address ${JSON.stringify(text)}: expected ADDRESS:PORT (e.g. ${DEFAULT_METRICS_ADDRESS}, 0.0.0.0:9476, [::1]:9476), or "" for no metrics`);
  }
  return { host, port };
}

export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export async function startMetricsServer(address: { host: string; port: number }, metrics: MetricsSource, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: GET ${METRICS_PATH}\n`);
      return;
    }
    metrics.text().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(text);
      },
      (err: Error) => {
        log.warn('metrics collection failed', { error: err.message });
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`metrics collection failed: ${err.message}\n`);
      },
    );
  });
  // Scrapers are few: a flood of connections is refused, not served.
  server.maxConnections = 16;
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new Error(`--metrics-address ${address.host}:${address.port} is in use by another program: choose another, or "" for no metrics`) : e));
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}
