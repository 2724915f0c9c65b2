/**
 * What every `weft` program shares: its root command and one exit path — run() returns a
 * status, the entry sets it; bad input is a message, never a stack trace.
 */
import { Command, CommanderError } from 'commander';
import { CniError } from '../cni/errors.js';
import { UserError } from '../util/user-error.js';

export const VERSION = '0.1.0';

export function newProgram(): Command {
  return new Command('weft').description('Weft: Kubernetes pod networking \u2014 CNI plugin, node agent and tools').version(VERSION).showHelpAfterError().exitOverride();
}

/** Every subcommand reports its errors to run() instead of exiting. */
export function withExitOverride(program: Command): Command {
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

export async function run(program: Command, argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof UserError) {
      process.stderr.write(`weft: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CniError) {
      process.stderr.write(`weft: ${err.message}${err.details ? ` (${err.details})` : ''} [CNI error ${err.code}]\n`);
      return 1;
    }
    const e = err as Error;
    process.stderr.write(`weft: ${e.message}\n${process.env['WEFT_DEBUG'] ? `${e.stack}\n` : ''}`);
    return 1;
  }
}
