/**
 * The agent socket's client side for tools: health (probes, `weft health`, the lab), key
 * rotation (`weft node rotate-key`) and what doctor compares (`weft doctor`), one JSON request each.
 */
import { request } from 'node:http';
import { HEALTH_PATH, ROTATE_KEY_PATH, type HealthReply, type RotateKeyReply } from './api.js';
import { DOCTOR_PATH, type DoctorView } from './doctor-view.js';

/** One request to an agent socket, its JSON answer; rejects when nothing answers. */
function ask<T>(socket: string, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const r = request({ socketPath: socket, path, method, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
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

/** GET /v1/health on an agent socket; rejects when nothing answers. */
export function getHealth(socket: string, timeoutMs = 2000): Promise<HealthReply> {
  return ask<HealthReply>(socket, 'GET', HEALTH_PATH, timeoutMs);
}

/** GET /v1/doctor: what the agent expects its node's kernel to hold. */
export function getDoctorView(socket: string, timeoutMs = 5000): Promise<DoctorView> {
  return ask<DoctorView>(socket, 'GET', DOCTOR_PATH, timeoutMs);
}

/** POST /v1/rotate-key: the node makes and publishes a new WireGuard key pair (`force`: even while a peer's agent is silent). */
export function rotateKey(socket: string, o: { force?: boolean; timeoutMs?: number } = {}): Promise<RotateKeyReply> {
  return ask<RotateKeyReply>(socket, 'POST', `${ROTATE_KEY_PATH}${o.force ? '?force=true' : ''}`, o.timeoutMs ?? 15_000);
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

