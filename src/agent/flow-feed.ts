/**
 * The live flows of a lab for the UI: each node's agent socket followed (GET /v1/flows?follow),
 * and followed again after its agent restarts or the stream breaks; the latest records kept for
 * pages that connect later, and every new one handed to the listeners.
 */
import { readFlows } from './flows-client.js';
import type { FlowRecord } from '../observe/flow.js';

export interface FeedNode {
  name: string;
  socket: string;
}

interface Follower {
  name: string;
  socket: string;
  stop: AbortController;
  /** The time of the last record taken, and the records taken at that time (a reconnect asks from it again). */
  lastTime?: string;
  atLast: Set<string>;
}

export class FlowFeed {
  private readonly followers = new Map<string, Follower>();
  private readonly recent: FlowRecord[] = [];
  private readonly listeners = new Set<(r: FlowRecord) => void>();

  /**
   * @param historyMs records this old are fetched when a node is first followed
   * @param keep how many records are kept for pages that connect later
   * @param retryMs the wait before following a node again
   */
  constructor(private readonly o: { historyMs: number; keep: number; retryMs: number; onLost?: (node: string, why: string) => void }) {}

  /** Follows the nodes given (new ones from now on), stops following those no longer there. */
  sync(nodes: FeedNode[]): void {
    for (const [name, f] of this.followers) {
      if (!nodes.some((n) => n.name === name && n.socket === f.socket)) {
        f.stop.abort();
        this.followers.delete(name);
      }
    }
    for (const n of nodes) {
      if (this.followers.has(n.name)) continue;
      const f: Follower = { name: n.name, socket: n.socket, stop: new AbortController(), atLast: new Set() };
      this.followers.set(n.name, f);
      void this.follow(f);
    }
  }

  /** The kept records, oldest first. */
  history(): FlowRecord[] {
    return [...this.recent];
  }

  subscribe(fn: (r: FlowRecord) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    for (const f of this.followers.values()) f.stop.abort();
    this.followers.clear();
    this.listeners.clear();
  }

  private take(f: Follower, r: FlowRecord): void {
    // A reconnect asks from the last time seen again: the records of that millisecond come twice.
    const key = JSON.stringify(r);
    if (f.lastTime !== undefined && r.time < f.lastTime) return;
    if (r.time === f.lastTime) {
      if (f.atLast.has(key)) return;
    } else {
      f.lastTime = r.time;
      f.atLast.clear();
    }
    f.atLast.add(key);
    this.recent.push(r);
    if (this.recent.length > this.o.keep) this.recent.splice(0, this.recent.length - this.o.keep);
    for (const fn of this.listeners) fn(r);
  }

  /** Until stopped: the agent's stream, again after it ends or fails (its agent down or restarted: the page shows agents' state from the topology). */
  private async follow(f: Follower): Promise<void> {
    const signal = f.stop.signal;
    while (!signal.aborted) {
      const sinceMs = f.lastTime !== undefined ? Date.parse(f.lastTime) : Date.now() - this.o.historyMs;
      const why = await readFlows(f.socket, (r) => this.take(f, r), { sinceMs, follow: true, signal }).then(
        () => 'its agent ended the stream',
        (err: Error) => err.message,
      );
      if (signal.aborted) return;
      this.o.onLost?.(f.name, why);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.o.retryMs);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  }
}
