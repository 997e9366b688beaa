import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The gateway has no database, and the packages are layered so that it does not even depend on a
// driver for one (docs/architecture.md#packages-and-layers): what holds Postgres code, @parley/pg,
// @parley/projector-pg and @parley/runtime-pg, sits above what the gateway uses. These tests fail
// when a change makes pg reachable from the gateway again, in its installed dependencies or in
// the code it imports.

const gatewayDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const root = path.resolve(gatewayDir, '../..');
const FORBIDDEN = ['pg', '@parley/pg'];

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  exports?: Record<string, string | { default?: string }>;
}

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Manifest;

/** Node's lookup: the nearest node_modules/<name> above `fromDir` (workspace packages are links there). */
function packageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name, 'package.json');
    if (existsSync(candidate)) return path.dirname(realpathSync(candidate));
    if (dir === path.dirname(dir)) return undefined;
  }
}

/**
 * Every package installed for the gateway at run time (devDependencies are not: the production
 * image prunes them), with the chain that brings each in, walked through node_modules so that a
 * third-party package depending on pg counts too.
 */
function runtimeDependencies(): Map<string, string[]> {
  const reached = new Map<string, string[]>([['@parley/gateway', ['@parley/gateway']]]);
  const queue = [{ dir: gatewayDir, chain: ['@parley/gateway'] }];
  while (queue.length > 0) {
    const { dir, chain } = queue.shift()!;
    const manifest = readJson(path.join(dir, 'package.json'));
    const names = Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies, ...manifest.peerDependencies });
    for (const name of names) {
      if (reached.has(name)) continue;
      reached.set(name, [...chain, name]);
      const found = packageDir(name, dir);
      if (found) queue.push({ dir: found, chain: [...chain, name] });
    }
  }
  return reached;
}

const SPECIFIERS = [/(?:^|[\s;}])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/g, /import\(\s*['"]([^'"]+)['"]\s*\)/g];

/** A workspace package's import (`@parley/x`, `@parley/x/sub`) as the source file its export maps to. */
function workspaceSource(specifier: string): string | undefined {
  const [scope, name, ...rest] = specifier.split('/');
  const dir = packageDir(`${scope}/${name}`, root);
  if (!dir || dir.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
  const entry = readJson(path.join(dir, 'package.json')).exports?.[rest.length ? `./${rest.join('/')}` : '.'];
  const built = typeof entry === 'string' ? entry : entry?.default;
  return built ? path.join(dir, built.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')) : undefined;
}

function relativeSource(from: string, specifier: string): string {
  const target = path.resolve(path.dirname(from), specifier);
  for (const candidate of [target.replace(/\.js$/, '.ts'), path.join(target, 'index.ts'), target]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${path.relative(root, from)} imports ${specifier}, which does not exist`);
}

/**
 * The packages the gateway's code imports, following its TypeScript sources from main.ts through
 * every workspace package it reaches (types included: a type from pg still needs it installed),
 * each with the file that imports it. The built files are compiled from exactly these.
 */
function importedPackages(): Map<string, string> {
  const importers = new Map<string, string>();
  const seen = new Set<string>();
  const files = [path.join(gatewayDir, 'src', 'main.ts')];
  while (files.length > 0) {
    const file = files.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const pattern of SPECIFIERS) {
      for (const [, specifier] of text.matchAll(pattern)) {
        if (!specifier || specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
        if (specifier.startsWith('.')) {
          files.push(relativeSource(file, specifier));
          continue;
        }
        const name = specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
        if (!importers.has(name)) importers.set(name, path.relative(root, file));
        const source = workspaceSource(specifier);
        if (source) files.push(source);
      }
    }
  }
  return importers;
}

describe('the gateway has no database', () => {
  it('has no pg among the packages installed for it', () => {
    const reached = runtimeDependencies();
    expect(reached.has('@parley/bus')).toBe(true); // the walk does reach the workspace packages
    const offending = FORBIDDEN.filter((name) => reached.has(name)).map((name) => reached.get(name)!.join(' → '));
    expect(offending).toEqual([]);
  });

  it('imports no pg from any file it runs, its own or a workspace package’s', () => {
    const imported = importedPackages();
    expect(imported.has('find-my-way')).toBe(true); // the walk does reach into workspace packages (@parley/http's router)
    const offending = FORBIDDEN.filter((name) => imported.has(name)).map((name) => `${name} (imported by ${imported.get(name)})`);
    expect(offending).toEqual([]);
  });
});
