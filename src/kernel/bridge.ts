import { CommandError, run } from './exec.js';
import { batchLine, type IpCommand } from './ip.js';

/** iproute2's `bridge` tool, for the forwarding database of a VXLAN device. */
export interface FdbEntry {
  mac: string;
  dst: string | undefined;
  permanent: boolean;
}

/** The device's FDB, in this netns or inside `netns` (a path the caller controls). */
export async function fdbShow(dev: string, netns?: string): Promise<FdbEntry[]> {
  const args = ['-j', 'fdb', 'show', 'dev', dev];
  const r = netns === undefined ? await run('bridge', args, { timeoutMs: 10_000 }) : await run('nsenter', [`--net=${netns}`, '--', 'bridge', ...args], { timeoutMs: 10_000 });
  const list = JSON.parse(r.stdout || '[]') as Array<{ mac: string; dst?: string; state?: string; flags?: string[] }>;
  return list.map((e) => ({ mac: e.mac, dst: e.dst, permanent: e.state === 'permanent' }));
}

/**
 * `bridge -force -batch -`: the same line syntax as ip's, so the same token rules (batchLine);
 * FDB entries are independent, so one refused entry does not hold back the others.
 */
export async function bridgeBatch(commands: readonly IpCommand[]): Promise<void> {
  if (commands.length === 0) return;
  const lines = commands.map(batchLine);
  try {
    await run('bridge', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 10_000 });
  } catch (err) {
    if (err instanceof CommandError) throw new Error(`bridge -batch failed: ${err.stderr.trim()}`, { cause: err });
    throw err;
  }
}
