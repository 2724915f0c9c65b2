import { request } from 'node:http';
import { HEALTH_PATH, type HealthReply } from './api.js';

/** GET /v1/health on an agent socket; rejects when nothing answers. */
export function getHealth(socket: string, timeoutMs = 2000): Promise<HealthReply> {
  return new Promise((resolve, reject) => {
    const r = request({ socketPath: socket, path: HEALTH_PATH, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as HealthReply);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end();
  });
}

/** Polls until the agent answers, the process exits, or the deadline passes. */
export async function waitForAgent(socket: string, timeoutMs: number, exited?: () => string | undefined): Promise<HealthReply> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const why = exited?.();
    if (why !== undefined) throw new Error(`the agent exited before it was ready: ${why}`);
    try {
      return await getHealth(socket, 1000);
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`the agent did not answer on ${socket} within ${timeoutMs} ms: ${(last as Error)?.message}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
