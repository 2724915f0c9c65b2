import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, promises as fs, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
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
 * Like writeFileAtomic, and durable: the content is on disk before the rename (a power loss
 * never leaves the new name with no content) and the rename is on disk before this returns
 * (the directory is synced). For writes that promise a change happened.
 */
export function writeFileDurable(path: string, data: string | Buffer, mode = 0o600): void {
  const tmp = tempPath(path);
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(dirname(path));
}

/** Makes a directory's entries (creations, renames, removals) durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
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
