import { run } from './main.js';

/** Entry point of the bundled CLI (dist/weft.mjs). */

// `weft lab status | head`: a reader that stops reading is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

void run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
