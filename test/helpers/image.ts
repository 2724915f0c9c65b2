import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A container image built offline from Debian's busybox-static, as a docker-archive tarball
 * (what `ctr image import` and `podman load` both read). Nothing is pulled from a registry.
 * One layer, two tags: a shell image with a web page for busybox httpd, and a "pause" image
 * for CRI sandboxes (containerd's default one would have to be pulled).
 */
export const BUSYBOX_IMAGE = 'weft.local/busybox:1';
export const PAUSE_IMAGE = 'weft.local/pause:1';
export const PAGE = 'hello from a weft pod\n';

const APPLETS = ['sh', 'sleep', 'ping', 'ping6', 'ip', 'wget', 'httpd', 'nc', 'cat', 'echo', 'ls', 'hostname', 'ifconfig', 'true', 'kill'];

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function tar(dir: string, out: string, entries: string[]): void {
  // Deterministic: the same inputs give the same layer digest on every run.
  execFileSync('tar', ['-C', dir, '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', out, ...entries]);
}

/** Writes the archive into `workDir` and returns its path. */
export function buildBusyboxArchive(workDir: string, busybox = '/bin/busybox'): string {
  const rootfs = join(workDir, 'rootfs');
  for (const d of ['bin', 'www', 'tmp', 'etc', 'proc', 'sys', 'dev']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  for (const a of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'www', 'index.html'), PAGE);
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');

  const archive = join(workDir, 'archive');
  mkdirSync(archive, { recursive: true });
  tar(rootfs, join(workDir, 'layer.tar'), ['.']);
  const layer = readFileSync(join(workDir, 'layer.tar'));
  const diffId = sha256(layer);
  mkdirSync(join(archive, diffId));
  writeFileSync(join(archive, diffId, 'layer.tar'), layer);

  const config = (cfg: Record<string, unknown>): string => {
    const body = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: '1970-01-01T00:00:00Z',
        config: { Env: ['PATH=/bin'], WorkingDir: '/', ...cfg },
        rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
        history: [{ created: '1970-01-01T00:00:00Z', created_by: 'weft test image from busybox-static' }],
      }),
    );
    const name = `${sha256(body)}.json`;
    writeFileSync(join(archive, name), body);
    return name;
  };
  const shell = config({ Cmd: ['sh'] });
  const pause = config({ Entrypoint: ['/bin/sleep', '2147483647'] });
  writeFileSync(
    join(archive, 'manifest.json'),
    JSON.stringify([
      { Config: shell, RepoTags: [BUSYBOX_IMAGE], Layers: [`${diffId}/layer.tar`] },
      { Config: pause, RepoTags: [PAUSE_IMAGE], Layers: [`${diffId}/layer.tar`] },
    ]),
  );
  const out = join(workDir, 'busybox-image.tar');
  tar(archive, out, ['manifest.json', shell, pause, diffId]);
  return out;
}
