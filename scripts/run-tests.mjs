// Runs the test suite with node's built-in runner: unit tests (build/src/**/*.test.js) first,
// then the end-to-end tests (build/test/**/*.test.js) that need root and network namespaces.
// Usage: node scripts/run-tests.mjs [--unit | --e2e] [name-pattern]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir, out = []) {
  let names = [];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) find(p, out);
    else if (n.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const args = process.argv.slice(2);

// One fast-check seed per run, printed so that any failure can be replayed: fixed in CI (a
// clean clone must pass the same way every time), random otherwise; WEFT_FC_SEED chooses it.
const seed = process.env.WEFT_FC_SEED ?? (process.env.CI ? '20261129' : String(Math.floor(Math.random() * 2 ** 31)));
process.stdout.write(`fast-check seed ${seed} (replay with WEFT_FC_SEED=${seed})\n`);
const only = args.find((a) => a === '--unit' || a === '--e2e');
const pattern = args.find((a) => !a.startsWith('--'));
const suites = [];
if (only !== '--e2e') suites.push(['unit', find('build/src'), 2]);
if (only !== '--unit') suites.push(['end-to-end', find('build/test'), 2]);

let failed = false;
for (const [name, files, concurrency] of suites) {
  if (files.length === 0) continue;
  process.stdout.write(`\n== ${name} tests (${files.length} files) ==\n`);
  const r = spawnSync(
    process.execPath,
    ['--import', './build/test/helpers/fc-seed.js', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...(pattern ? [`--test-name-pattern=${pattern}`] : []), ...files],
    { stdio: 'inherit', env: testEnv() },
  );
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);

// Agents the tests start are node processes too; NODE_EXTRA_CA_CERTS (set on some machines)
// costs each ~80 ms of start-up and nothing here uses TLS.
function testEnv() {
  const env = { ...process.env, WEFT_FC_SEED: seed };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}
