import { CNI_PATH, MAX_REQUEST_BYTES, type CniReply, type CniRequest } from '../agent/api.js';
import { parseResult } from '../cni/convert.js';
import { CniError, ErrorCode, parseErrorObject } from '../cni/errors.js';

/**
 * Sends one request to the agent over its unix socket. An agent that is not there is a
 * transient condition for ADD/DEL/CHECK/GC (code 11: the runtime retries) and "not available"
 * for STATUS (code 50).
 *
 * HTTP/1.1 is spoken directly on a `net` socket rather than through node:http: loading and
 * initialising node:http costs ~20 ms of every plugin start (measured: a health request with
 * node:http 73 ms, with net 52 ms, `node -e 0` 38 ms), and the plugin starts once per CNI call.
 * The only peer is Weft's own agent, which always answers with Content-Length and closes.
 */
export interface HttpReply {
  status: number;
  body: string;
}

/** Splits a complete HTTP/1.1 response (read until the server closed) into status and body. */
export function parseHttpResponse(raw: Buffer): HttpReply {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('incomplete HTTP response');
  const head = raw.subarray(0, end).toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!m) throw new Error(`not an HTTP response: ${head.slice(0, 40)}`);
  let body = raw.subarray(end + 4);
  const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (len) body = body.subarray(0, Number(len[1]));
  else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) throw new Error('chunked responses are not expected from the agent');
  return { status: Number(m[1]), body: body.toString('utf8') };
}

export async function httpPost(socket: string, path: string, body: string, timeoutMs: number): Promise<HttpReply> {
  // Loaded only when the agent is called: VERSION and the about banner never pay for node:net.
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    const chunks: Buffer[] = [];
    s.setTimeout(timeoutMs, () => s.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
    s.once('connect', () => {
      // write, not end: node's server closes a half-closed socket before a slow handler answers.
      // With "Connection: close" the server closes once the reply is sent.
      s.write(
        `POST ${path} HTTP/1.1\r\nHost: weft\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('error', reject);
    s.once('close', (hadError) => {
      if (hadError) return;
      try {
        resolve(parseHttpResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

export async function callAgent(socket: string, req: CniRequest, timeoutMs = 120_000): Promise<CniReply> {
  const body = JSON.stringify(req);
  // Bigger is refused here, without sending it.
  if (Buffer.byteLength(body) > MAX_REQUEST_BYTES) {
    throw new CniError(ErrorCode.IoFailure, `the request is ${Buffer.byteLength(body)} bytes; the agent accepts at most ${MAX_REQUEST_BYTES} bytes (2 MiB)`);
  }
  const { status, body: text } = await httpPost(socket, CNI_PATH, body, timeoutMs).catch((err: NodeJS.ErrnoException) => {
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
