/**
 * Reading a node's flow records from its agent socket (GET /v1/flows, one JSON object per
 * line): once, or following new ones until the caller stops.
 */
import { request } from 'node:http';
import type { FlowRecord } from '../observe/flow.js';
import { FLOWS_PATH } from './api.js';

export interface FlowReadOptions {
  /** Only records at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** Keep reading new records until `signal` aborts (or the agent goes). */
  follow?: boolean;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Calls `onRecord` with each record, in the node's order; resolves when the answer ends (at
 * once without follow), rejects when the agent cannot be reached or refuses.
 */
export function readFlows(socket: string, onRecord: (r: FlowRecord) => void, o: FlowReadOptions = {}): Promise<void> {
  const q = new URLSearchParams();
  if (o.sinceMs !== undefined) q.set('since', String(Math.floor(o.sinceMs)));
  if (o.follow) q.set('follow', '1');
  const path = `${FLOWS_PATH}${q.size ? `?${q}` : ''}`;
  return new Promise((resolve, reject) => {
    const r = request({ socketPath: socket, path, method: 'GET', ...(o.signal ? { signal: o.signal } : {}) }, (res) => {
      res.setEncoding('utf8');
      let buffered = '';
      if (res.statusCode !== 200) {
        res.on('data', (d: string) => (buffered += d));
        res.on('end', () => {
          let why = buffered;
          try {
            why = (JSON.parse(buffered) as { error?: string }).error ?? buffered;
          } catch {
            // not JSON: say it as it came
          }
          reject(new Error(`the agent on ${socket} refused: ${why.trim() || `HTTP ${res.statusCode}`}`));
        });
        return;
      }
      // A follow stream is idle between flows: only the connect attempt has a timeout.
      r.setTimeout(0);
      res.on('data', (d: string) => {
        buffered += d;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          let record: FlowRecord;
          try {
            record = JSON.parse(line) as FlowRecord;
          } catch {
            r.destroy(new Error(`the agent on ${socket} sent a line that is not JSON: ${line.slice(0, 80)}`));
            return;
          }
          onRecord(record);
        }
      });
      res.on('end', () => resolve());
      res.on('error', (e) => (o.signal?.aborted ? resolve() : reject(e)));
    });
    r.setTimeout(o.timeoutMs ?? 5000, () => r.destroy(new Error(`no answer from ${socket} within ${o.timeoutMs ?? 5000} ms`)));
    r.on('error', (e) => (o.signal?.aborted ? resolve() : reject(e)));
    r.end();
  });
}
