import { readFileSync, writeSync } from 'node:fs';
import { runPlugin } from './run.js';

/**
 * The config on stdin. A synchronous read of fd 0 avoids setting up stream machinery in a
 * process that lives for one request; a non-blocking fd 0 (EAGAIN) falls back to the stream.
 */
function readStdin(): Promise<Buffer> {
  try {
    return Promise.resolve(readFileSync(0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return Promise.reject(err as Error);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.on('error', reject);
  });
}

/**
 * Output straight to the file descriptor: for a pipe, touching process.stdout builds a
 * net.Socket and its stream machinery, several ms of start-up for a few hundred bytes.
 */
function writeAll(fd: number, s: string): void {
  let buf = Buffer.from(s);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

/** Entry point of the bundled plugin executable (dist/weft-cni.cjs, installed as `weft`). */
void runPlugin({
  env: process.env,
  readStdin,
  stdout: (s) => writeAll(1, s),
  stderr: (s) => writeAll(2, s),
}).then((code) => {
  process.exitCode = code;
});
