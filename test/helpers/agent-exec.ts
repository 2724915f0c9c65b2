import { request } from 'node:http';
import { EXEC_PATH } from '../../src/agent/api.js';

/**
 * A plugin execution sent straight to an agent's socket, as the forwarder sends it — or as
 * anyone who can open the socket could, with whatever values they like.
 */
export interface ExecAnswer {
  status: number;
  exit: number;
  stdout: string;
  json: Record<string, unknown> | undefined;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

export function execBody(env: Record<string, string>, stdin: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, b64(v)])), stdin: b64(stdin), ...extra });
}

export function sendExec(socket: string, body: string, timeoutMs = 20_000): Promise<ExecAnswer> {
  return new Promise((resolve, reject) => {
    const r = request({ socketPath: socket, path: EXEC_PATH, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const stdout = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          json = stdout ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, exit: Number(res.headers['x-cni-exit'] ?? 1), stdout, json });
      });
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end(body);
  });
}
