/**
 * `weft ui`: serves a lab's live page — topology, flows with their verdicts, the policy matrix,
 * traces — until Ctrl-C. It has no authentication, so it listens on loopback unless told.
 */
import type { Command } from 'commander';
import { resolveLabName } from '../lab/lab-state.js';
import { startUiServer } from '../ui/server.js';
import { DEFAULT_LISTEN, parseListen } from '../ui/listen.js';
import { labAlias, labOpt } from './lab-command.js';

export function registerUiCommand(program: Command): void {
  program
    .command('ui')
    .description("a web page of a lab: its nodes and pods, live flows (a drop's deciding rule a click away) and the policy matrix")
    .option(...labOpt)
    .addOption(labAlias())
    .option('--listen <address:port>', 'where to serve the page (port 0: any free port)', DEFAULT_LISTEN)
    .option('--allow-remote', 'accept a --listen address that is not loopback (the page has no authentication: anyone who reaches it sees the cluster)')
    .addHelpText('after', '\nThe page has no authentication and shows the lab to whoever reaches the port: by default it\nlistens on 127.0.0.1 only. Runs until Ctrl-C.')
    .action(async (o: { lab?: string; listen: string; allowRemote?: boolean }) => {
      const lab = resolveLabName(o.lab);
      const at = parseListen(o.listen, o.allowRemote ?? false);
      const ui = await startUiServer({ lab, host: at.host, port: at.port });
      if (!at.loopback) process.stderr.write(`weft: warning: serving on ${at.host}, not loopback: the page has no authentication\n`);
      process.stdout.write(`weft ui: lab ${lab} at ${ui.url} (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await ui.close();
    });
}
