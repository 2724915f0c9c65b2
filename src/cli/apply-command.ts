import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { isStoreError, type Store } from '../datastore/store.js';
import { waitPolicyConverged, withLabStore } from '../lab/lab.js';
import { loadLab, resolveLabName } from '../lab/lab-state.js';
import { describeObject, parseManifests } from '../model/manifest.js';
import type { KObject } from '../model/objects.js';
import { UserError } from '../util/user-error.js';
import { openStore } from '../datastore/open-store.js';
import { labAlias } from './lab-command.js';

/**
 * `weft apply -f FILE` / `weft delete -f FILE`: Kubernetes-shaped objects into a datastore — the
 * lab's by default, or one named with --datastore.
 */
export interface StoreFlags {
  lab?: string;
  datastore?: string;
  datastoreDir?: string;
  etcdEndpoints?: string;
  kubeconfig?: string;
}

/** Kinds whose change alters what agents enforce. */
const POLICY_KINDS = new Set(['NetworkPolicy', 'WeftClusterPolicy', 'Namespace', 'Pod']);

/** In a lab, `apply` returns once every node enforces the result: a matrix right after is current. */
async function waitForLab(o: StoreFlags & { wait?: boolean; json?: boolean }, objs: KObject[]): Promise<string | undefined> {
  if (o.datastore || o.wait === false || !objs.some((x) => POLICY_KINDS.has(x.kind))) return undefined;
  const state = loadLab(resolveLabName(o.lab));
  const ms = await waitPolicyConverged(state);
  return `policy in force on ${state.nodes.length} node${state.nodes.length === 1 ? '' : 's'} (${ms} ms)`;
}

export async function withStore<R>(o: StoreFlags, fn: (s: Store) => Promise<R>): Promise<R> {
  if (o.datastore) {
    const store = await openStore(o);
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  }
  return withLabStore(loadLab(resolveLabName(o.lab)), fn);
}

export function readManifests(file: string): KObject[] {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`-f ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return parseManifests(text, file);
}

export function storeFlags(c: Command): Command {
  return c
    .option('--lab <name>', 'the lab whose datastore to use (default: the only lab running); also --name')
    .addOption(labAlias())
    .option('--datastore <kind>', 'or a datastore: file, etcd or kubernetes')
    .option('--datastore-dir <dir>', 'the file datastore directory')
    .option('--etcd-endpoints <urls>', 'etcd client URLs')
    .option('--kubeconfig <file>', '--datastore kubernetes: the API and credentials (default: KUBECONFIG)');
}

type ManifestOptions = StoreFlags & { filename: string; json?: boolean; wait?: boolean };

/** `apply` and `delete` take the same flags. */
function manifestCommand(program: Command, name: string, description: string): Command {
  return storeFlags(program.command(name))
    .description(description)
    .requiredOption('-f, --filename <file>', 'the manifest ("-" for stdin)')
    .option('--json', 'machine-readable output')
    .option('--no-wait', 'in a lab: return without waiting until every node enforces the change');
}

/** One line per object (or JSON), then, in a lab, when every node enforces the result. */
async function report(o: ManifestOptions, objs: KObject[], done: Array<{ object: string; action: string }>): Promise<void> {
  const waited = await waitForLab(o, objs);
  if (o.json) process.stdout.write(JSON.stringify(done, null, 2) + '\n');
  else for (const d of done) process.stdout.write(`${d.object} ${d.action}\n`);
  if (waited && !o.json) process.stdout.write(`${waited}\n`);
}

export function registerApplyCommands(program: Command): void {
  manifestCommand(program, 'apply', 'create or update Kubernetes-shaped objects (YAML or JSON, several documents, Lists)')
    .action(async (o: ManifestOptions) => {
      const objs = readManifests(o.filename);
      const done = await withStore(o, async (store) => {
        const results: Array<{ object: string; action: 'created' | 'configured' | 'unchanged' }> = [];
        for (const obj of objs) {
          const cur = await store.get(obj.kind, obj.metadata.name, obj.metadata.namespace);
          try {
            if (!cur) {
              await store.create(obj);
              results.push({ object: describeObject(obj), action: 'created' });
              continue;
            }
            const { resourceVersion: _rv, creationTimestamp: _ct, ...curMeta } = cur.metadata;
            const same = JSON.stringify({ ...cur, metadata: curMeta }) === JSON.stringify({ ...obj, metadata: { ...obj.metadata } });
            if (same) {
              results.push({ object: describeObject(obj), action: 'unchanged' });
              continue;
            }
            await store.update({ ...obj, metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion as string } });
            results.push({ object: describeObject(obj), action: 'configured' });
          } catch (err) {
            if (isStoreError(err, 'Conflict')) throw new UserError(`${describeObject(obj)} changed while being applied; apply again`);
            if (isStoreError(err, 'Invalid')) throw new UserError(err.message);
            throw err;
          }
        }
        return results;
      });
      await report(o, objs, done);
    });

  manifestCommand(program, 'delete', 'delete the objects a manifest names')
    .action(async (o: ManifestOptions) => {
      const objs = readManifests(o.filename);
      const done = await withStore(o, async (store) => {
        const results: Array<{ object: string; action: 'deleted' | 'not found' }> = [];
        for (const obj of objs) {
          const gone = await store.delete(obj.kind, obj.metadata.name, obj.metadata.namespace);
          results.push({ object: describeObject(obj), action: gone ? 'deleted' : 'not found' });
        }
        return results;
      });
      await report(o, objs, done);
    });
}
