/** Entry point of the bundled CLI (dist/weft.mjs). */
import { run } from './run.js';

// `weft lab status | head`: a reader that stops reading is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const argv = process.argv.slice(2);
// The agent loads only its own command (a chunk of its own in the bundle); everything else the whole CLI.
const program = argv[0] === 'agent' ? (await import('./agent-program.js')).buildAgentProgram() : (await import('./main.js')).buildProgram();
process.exitCode = await run(program, argv);
