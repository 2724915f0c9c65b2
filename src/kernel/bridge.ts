import { CommandError, run } from './exec.js';

/** iproute2's `bridge` tool, for the forwarding database of a VXLAN device. */
export interface FdbEntry {
  mac: string;
  dst: string | undefined;
  permanent: boolean;
}

export async function fdbShow(dev: string): Promise<FdbEntry[]> {
  const r = await run('bridge', ['-j', 'fdb', 'show', 'dev', dev], { timeoutMs: 10_000 });
  const list = JSON.parse(r.stdout || '[]') as Array<{ mac: string; dst?: string; state?: string; flags?: string[] }>;
  return list.map((e) => ({ mac: e.mac, dst: e.dst, permanent: e.state === 'permanent' }));
}

export async function bridgeBatch(lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  try {
    await run('bridge', ['-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 10_000 });
  } catch (err) {
    if (err instanceof CommandError) throw new Error(`bridge -batch failed: ${err.stderr.trim()}`, { cause: err });
    throw err;
  }
}
