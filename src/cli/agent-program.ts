/**
 * `weft agent` on its own: the agent is the one long-running process, and what it loads it keeps
 * for as long as it runs — the other commands (lab, policy, demo, install) and their libraries
 * are left out of it (~2 MiB of RSS, measured).
 */
import type { Command } from 'commander';
import { registerAgentCommand } from './agent-command.js';
import { newProgram, withExitOverride } from './run.js';

export function buildAgentProgram(): Command {
  const program = newProgram();
  registerAgentCommand(program);
  return withExitOverride(program);
}
