import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Crash-safe file writes. A reader (or the next start after kill -9) sees the old content or the
 * new, never half of it: content goes to a temporary file in the same directory first.
 * Temporary names start with ".tmp-" so that loaders can skip and sweep them.
 */
export const TEMP_PREFIX = '.tmp-';

function tempPath(path: string): string {
  return join(dirname(path), `${TEMP_PREFIX}${basename(path)}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Replaces `path` atomically (write temp, rename over). */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = tempPath(path);
  try {
    await fs.writeFile(tmp, data, { mode });
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Creates `path` with its full content only if it does not exist yet (write temp, then link():
 * atomic and exclusive). Returns false when the file already existed.
 */
export async function createFileExclusive(path: string, data: string | Buffer, mode = 0o600): Promise<boolean> {
  const tmp = tempPath(path);
  await fs.writeFile(tmp, data, { mode });
  try {
    await fs.link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
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
