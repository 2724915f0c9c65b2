// Bundles the plugin and the CLI into single files: the plugin starts once per CNI call, and
// one file with no module resolution is the fastest thing node can load.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const common = { bundle: true, platform: 'node', target: 'node24', sourcemap: false, legalComments: 'none', logLevel: 'warning' };

await build({
  ...common,
  entryPoints: ['src/plugin/main.ts'],
  outfile: 'dist/weft-cni.cjs',
  format: 'cjs',
  minify: true,
  // Lazy imports become lazy require(): a real import() would boot node's ESM loader.
  supported: { 'dynamic-import': false },
  banner: { js: '#!/usr/bin/env node' },
});
await build({
  ...common,
  entryPoints: ['src/cli/entry.ts'],
  outfile: 'dist/weft.mjs',
  format: 'esm',
  // etcd3 reads its .proto files next to its own code: it is loaded from node_modules, lazily.
  external: ['etcd3', 'cockatiel'],
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __weftCreateRequire } from 'node:module'; const require = __weftCreateRequire(import.meta.url);" },
});
chmodSync('dist/weft-cni.cjs', 0o755);
chmodSync('dist/weft.mjs', 0o755);
