/**
 * Runs a command (ctr) with our CNI dirs at the only paths `ctr run --cni` reads:
 * /etc/cni/net.d and /opt/cni/bin. Meant to run under `unshare --mount --propagation private`,
 * so the mounts exist only for this process tree; tmpfs first, so nothing is created on the
 * machine's own filesystem.
 *
 *   unshare --mount --propagation private -- node with-cni-dirs.js BIN_DIR CONF_DIR -- CMD ARGS…
 */
import { execFileSync, spawnSync } from 'node:child_process';

const [binDir, confDir, sep, cmd, ...args] = process.argv.slice(2);
if (!binDir || !confDir || sep !== '--' || !cmd) {
  process.stderr.write('usage: with-cni-dirs.js BIN_DIR CONF_DIR -- CMD [ARGS…]\n');
  process.exit(2);
}
for (const [parent, dir, source] of [['/etc/cni', '/etc/cni/net.d', confDir], ['/opt', '/opt/cni/bin', binDir]] as const) {
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', parent]);
  execFileSync('mkdir', ['-p', dir]);
  execFileSync('mount', ['--bind', source, dir]);
}
const r = spawnSync(cmd, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
