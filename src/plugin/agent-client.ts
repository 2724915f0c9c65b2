import { request as httpRequest } from 'node:http';
import { CNI_PATH, type CniReply, type CniRequest } from '../agent/api.js';
import { CniError, ErrorCode, parseErrorObject } from '../cni/errors.js';
import { parseResult } from '../cni/convert.js';

/**
 * Sends one request to the agent over its unix socket. An agent that is not there is a
 * transient condition for ADD/DEL/CHECK/GC (code 11: the runtime retries) and "not available"
 * for STATUS (code 50).
 */
export async function callAgent(socket: string, req: CniRequest, timeoutMs = 120_000): Promise<CniReply> {
  const body = JSON.stringify(req);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const r = httpRequest(
      {
        socketPath: socket,
        path: CNI_PATH,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    r.on('error', reject);
    r.end(body);
  }).catch((err: NodeJS.ErrnoException) => {
    const unreachable = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES';
    const what = unreachable ? `the weft agent is not reachable at ${socket} (${err.code})` : `the weft agent at ${socket} failed: ${err.message}`;
    const hint = unreachable ? 'start it with `weft agent`, or check "socket" in the network config' : undefined;
    throw new CniError(req.command === 'STATUS' ? ErrorCode.NotAvailable : ErrorCode.TryAgainLater, what, hint);
  });

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CniError(ErrorCode.Internal, `the weft agent answered HTTP ${status} with non-JSON: ${text.slice(0, 200)}`);
  }
  if (status !== 200) {
    const e = parseErrorObject(json);
    if (e) throw new CniError(e.code, e.msg, e.details);
    throw new CniError(ErrorCode.Internal, `the weft agent answered HTTP ${status}: ${text.slice(0, 200)}`);
  }
  const reply = json as Record<string, unknown>;
  return reply['result'] !== undefined ? { result: parseResult(reply['result'], '1.1.0', 'the agent result') } : {};
}
