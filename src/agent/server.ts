import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { asCniError, CniError, ErrorCode } from '../cni/errors.js';
import type { Logger } from '../util/log.js';
import { CNI_PATH, HEALTH_PATH, parseCniRequest, type CniReply, type HealthReply } from './api.js';
import type { CniService } from './cni-service.js';

const MAX_BODY = 1 << 20;

/** HTTP status for a CNI error: the body always carries the CNI code, this only helps curl users. */
function httpStatus(code: number): number {
  if (code >= 1 && code <= 8) return 400;
  if (code === ErrorCode.TryAgainLater || code === ErrorCode.NotAvailable || code === ErrorCode.NotAvailableLimitedConnectivity) {
    return 503;
  }
  if (code === ErrorCode.AttachmentConflict || code === ErrorCode.InterfaceConflict || code === ErrorCode.AddressUnavailable) {
    return 409;
  }
  return 500;
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
    if (size > MAX_BODY) throw new CniError(ErrorCode.IoFailure, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
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
  log: Logger;
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

/** Serves the plugin's requests on a unix socket only root can open (mode 0600). */
export async function startAgentServer(opts: AgentServerOptions): Promise<Server> {
  const { socketPath, service, log } = opts;
  await fs.mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  if (await socketAlive(socketPath)) {
    throw new Error(`another agent is already serving ${socketPath}; stop it or choose another --socket`);
  }
  await fs.rm(socketPath, { force: true });

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (req.method === 'GET' && req.url === HEALTH_PATH) {
        send(res, 200, opts.health());
        return;
      }
      if (req.method !== 'POST' || req.url !== CNI_PATH) {
        send(res, 404, { code: ErrorCode.InvalidEnvironment, msg: `no such endpoint: ${req.method} ${req.url}`, details: `use POST ${CNI_PATH} or GET ${HEALTH_PATH}` });
        return;
      }
      const body = await readBody(req);
      const request = parseCniRequest(body);
      const started = process.hrtime.bigint();
      try {
        const result = await service.handle(request);
        const reply: CniReply = result ? { result } : {};
        send(res, 200, reply);
      } finally {
        log.debug('request', {
          command: request.command,
          containerId: request.containerId,
          ifName: request.ifName,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        });
      }
    } catch (err) {
      const e = asCniError(err);
      if (e.code === ErrorCode.Internal || e.code === ErrorCode.KernelFailure) {
        log.error('request failed', { code: e.code, msg: e.message, stack: err instanceof Error ? err.stack : undefined });
      }
      send(res, httpStatus(e.code), e.toObject());
    }
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await fs.chmod(socketPath, 0o600);
  return server;
}
