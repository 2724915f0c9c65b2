import { Command } from 'commander';
import { UserError } from '../util/user-error.js';
import { registerAgentCommand } from './agent-command.js';
import { newProgram, withExitOverride } from './run.js';
import { registerCniCommands } from './cni-command.js';
import { registerConnectivityCommands } from './connectivity-command.js';
import { registerDemoCommand } from './demo-command.js';
import { registerFlowsCommand } from './flows-command.js';
import { registerDoctorCommand } from './doctor-command.js';
import { registerHealthCommand } from './health-command.js';
import { registerInstallCommands } from './install-command.js';
import { registerApplyCommands } from './apply-command.js';
import { registerLabCommands } from './lab-command.js';
import { registerNodeCommands } from './node-command.js';
import { registerPolicyCommands } from './policy-command.js';
import { registerUiCommand } from './ui-command.js';

/** The whole `weft` command; `weft agent` alone loads only agent-program.ts (entry.ts). */
export function buildProgram(): Command {
  const program = newProgram();
  registerAgentCommand(program);
  registerHealthCommand(program);
  registerDoctorCommand(program);
  registerInstallCommands(program);
  registerCniCommands(program);
  registerDemoCommand(program);
  registerLabCommands(program);
  registerNodeCommands(program);
  registerApplyCommands(program);
  registerPolicyCommands(program);
  registerFlowsCommand(program);
  registerConnectivityCommands(program);
  registerUiCommand(program);
  // --name is an alias of --lab wherever a lab is named: one flag, whichever spelling is used.
  program.hook('preAction', (_root, action) => {
    const o = action.opts<{ lab?: string; name?: string }>();
    if (!action.options.some((opt) => opt.long === '--lab') || o.name === undefined) return;
    if (o.lab !== undefined && o.lab !== o.name) throw new UserError(`--lab ${o.lab} and --name ${o.name} name different labs: give one`);
    action.setOptionValue('lab', o.name);
  });
  return withExitOverride(program);
}
