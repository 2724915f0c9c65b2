import { readFileSync } from 'node:fs';
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

/** Entry point of the bundled plugin executable (dist/weft-cni.cjs, installed as `weft`). */
void runPlugin({
  env: process.env,
  readStdin,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
}).then((code) => {
  process.exitCode = code;
});
