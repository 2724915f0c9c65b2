import { fstatSync, readFileSync, readSync, writeSync } from 'node:fs';
import { runPlugin, STDIN_LIMIT_BYTES, STDIN_TIMEOUT_MS } from './run.js';

/**
 * The config on stdin, at most STDIN_LIMIT_BYTES and within STDIN_TIMEOUT_MS: a runtime writes
 * it and closes stdin at once, so a stdin that stays open or never ends is refused rather than
 * waited on forever. A pipe is read as a non-blocking stream (a blocking read in libuv's thread
 * pool would outlive the answer and even keep process.exit from returning); a file is read whole.
 */
async function readStdin(): Promise<Buffer> {
  const st = fstatSync(0);
  if (st.isFile()) {
    if (st.size > STDIN_LIMIT_BYTES) throw tooLarge();
    return readFileSync(0);
  }
  if (st.isCharacterDevice()) {
    // /dev/null, or /dev/zero by mistake: read at most the limit (a terminal would block here;
    // no runtime gives a plugin one).
    const buf = Buffer.alloc(STDIN_LIMIT_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = readSync(0, buf, n, buf.length - n, null);
      if (got === 0) return buf.subarray(0, n);
      n += got;
      if (n > STDIN_LIMIT_BYTES) throw tooLarge();
    }
  }
  const { Socket } = await import('node:net');
  return new Promise((resolve, reject) => {
    const stream = new Socket({ fd: 0, readable: true, writable: false });
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | undefined): void => {
      clearTimeout(timer);
      stream.removeAllListeners('data');
      stream.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const timer = setTimeout(() => finish(new Error(`stdin was not closed within ${STDIN_TIMEOUT_MS / 1000} s (the network configuration must be written and stdin closed)`)), STDIN_TIMEOUT_MS);
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > STDIN_LIMIT_BYTES) finish(tooLarge());
      else chunks.push(c);
    });
    stream.once('end', () => finish(undefined));
    stream.once('error', (err) => finish(err));
  });
}

function tooLarge(): Error {
  return new Error(`the network configuration on stdin is larger than ${STDIN_LIMIT_BYTES} bytes (1 MiB), the most Weft reads`);
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
