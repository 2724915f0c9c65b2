import { run } from './main.js';

/** Entry point of the bundled CLI (dist/weft.mjs). */
void run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
