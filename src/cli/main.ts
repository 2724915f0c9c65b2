import { Command, CommanderError } from 'commander';
import { CniError } from '../cni/errors.js';
import { UserError } from '../util/user-error.js';
import { registerAgentCommand } from './agent-command.js';
import { registerCniCommands } from './cni-command.js';
import { registerDemoCommand } from './demo-command.js';
import { registerInstallCommands } from './install-command.js';
import { registerApplyCommands } from './apply-command.js';
import { registerLabCommands } from './lab-command.js';
import { registerPolicyCommands } from './policy-command.js';

/** The `weft` command. One exit path: run() returns a status, main sets it. */
export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('weft')
    .description('Weft: Kubernetes pod networking — CNI plugin, node agent and tools')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerAgentCommand(program);
  registerInstallCommands(program);
  registerCniCommands(program);
  registerDemoCommand(program);
  registerLabCommands(program);
  registerApplyCommands(program);
  registerPolicyCommands(program);
  // --name is an alias of --lab wherever a lab is named: one flag, whichever spelling is used.
  program.hook('preAction', (_root, action) => {
    const o = action.opts<{ lab?: string; name?: string }>();
    if (!action.options.some((opt) => opt.long === '--lab') || o.name === undefined) return;
    if (o.lab !== undefined && o.lab !== o.name) throw new UserError(`--lab ${o.lab} and --name ${o.name} name different labs: give one`);
    action.setOptionValue('lab', o.name);
  });
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
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
