/**
 * A file the build makes in dist/ (the forwarder, the rtnetlink and nftables helpers, the CLI's
 * entry weft.mjs), found from the running
 * code: next to the bundled CLI (dist/weft.mjs), or in dist/ above the compiled sources
 * (build/src/…). undefined when it was not built.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findBuiltFile(name: string, from: string = import.meta.url): string | undefined {
  let dir = dirname(fileURLToPath(from));
  for (let i = 0; i < 6; i++) {
    for (const candidate of [join(dir, name), join(dir, 'dist', name)]) if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/**
 * dist/weft.mjs, the CLI's entry: what labs and demos start agents and pod servers with. Not
 * this module's own file — the bundle is split into chunks, and a chunk run alone does nothing.
 */
export function cliEntry(): string {
  const found = findBuiltFile('weft.mjs');
  if (!found) throw new Error('cannot find dist/weft.mjs: run `npm run build` first');
  return found;
}
