import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import type { ExecResult } from './env.js';
import { execPlugin } from './env.js';
import type { TestNode } from './node.js';

/** Direct plugin execution against a test node, for the cases a runtime would never send. */
export function baseEnv(node: TestNode, command: string, id = 't1', ifName = 'eth0', netns?: string): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: netns ?? `/run/netns/${node.sb.prefix}-${id}`,
    CNI_IFNAME: ifName,
    CNI_PATH: node.sb.cniPath.join(':'),
  };
}

export function config(node: TestNode, o: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: '1.0.0', name: node.list.name, type: 'weft', socket: node.sb.socket, ...o });
}

export function run(node: TestNode, env: Record<string, string>, stdin: string | undefined): Promise<ExecResult> {
  // In the node's netns, where a runtime on that node runs its plugins.
  return execPlugin(node.plugin, env, stdin, { netns: node.sb.nodeNetnsPath });
}

/** A failure in the spec's form: non-zero exit, one JSON error object with this code on stdout. */
export function assertCniError(r: ExecResult, code: number, msg?: RegExp | string): void {
  assert.notEqual(r.code, 0, `expected a failure, got exit 0 with ${r.stdout}`);
  assert.ok(r.json, `stdout must hold a JSON error object, got ${JSON.stringify(r.stdout)} (stderr ${r.stderr})`);
  assert.equal(r.json['code'], code, `expected code ${code}, got ${JSON.stringify(r.json)}`);
  assert.equal(typeof r.json['msg'], 'string');
  if (typeof msg === 'string') assert.equal(r.json['msg'], msg);
  else if (msg) assert.match(r.json['msg'] as string, msg);
}

export function assertOk(r: ExecResult): void {
  assert.equal(r.code, 0, `expected success, got exit ${r.code}: ${r.stdout} ${r.stderr}`);
}

export async function reservationCount(node: TestNode): Promise<number> {
  return (await fs.readdir(`${node.sb.stateDir}/ipam/reservations`)).filter((n) => !n.startsWith('.')).length;
}
