import { spawn } from 'node:child_process';

/** Runs a command with this terminal's stdio inside a netns (lab exec); resolves to its exit status. */
export function runInNetns(netnsPath: string, argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, '--', ...argv], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
