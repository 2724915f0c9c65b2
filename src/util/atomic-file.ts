import { randomBytes } from 'node:crypto';
import { linkSync, promises as fs, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Crash-safe writes of small state files. A reader (or the next start after kill -9) sees the
 * old content or the new, never half of it: content goes to a temporary file in the same
 * directory first. Temporary names start with ".tmp-" so loaders skip and sweep them.
 *
 * The calls are synchronous on purpose: these files are a few hundred bytes on local disk, and
 * a synchronous write+rename takes microseconds, while each async fs call is a round trip
 * through libuv's thread pool (measured on the ADD path: 4 reservation/cursor files took 5-7 ms
 * async).
 */
export const TEMP_PREFIX = '.tmp-';

function tempPath(path: string): string {
  return join(dirname(path), `${TEMP_PREFIX}${basename(path)}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Replaces `path` atomically (write temp, rename over). */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): void {
  const tmp = tempPath(path);
  try {
    writeFileSync(tmp, data, { mode });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Creates `path` with its full content only if it does not exist yet (write temp, then link():
 * atomic and exclusive). Returns false when the file already existed.
 */
export function createFileExclusive(path: string, data: string | Buffer, mode = 0o600): boolean {
  const tmp = tempPath(path);
  writeFileSync(tmp, data, { mode });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Removes temporary files left by a crash in the middle of a write. */
export async function sweepTempFiles(dir: string): Promise<number> {
  let n = 0;
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith(TEMP_PREFIX)) {
      await fs.rm(join(dir, name), { force: true });
      n++;
    }
  }
  return n;
}
