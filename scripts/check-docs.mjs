#!/usr/bin/env node
// Runbooks that cannot drift (issue 20): checks the operations guide, in both languages, against
// what the repository really has. Run by .ci/run with the deployment checks; needs no build.
//   - docs/operations.md and docs/operations.ru.md have the same sections, at the same levels, in
//     the same order;
//   - every setting a settings table of either names (a row starting with `NAME`) is read by some
//     env schema (packages/config, services/*/src/env.ts), and every setting a schema reads has a
//     row in both (or in the README's table);
//   - every `npm run <script>` in docs/ and the README exists in package.json, every `parley <command>`
//     exists in bin/parley.mjs;
//   - every relative link in docs/, the README and the prod overlay's README points at a file of the
//     repository, and every `#anchor` of a link to a markdown file (or within one) at one of its
//     headings, by GitHub's slug rules.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (p) => readFileSync(path.join(root, p), 'utf8');
const problems = [];
const fail = (msg) => problems.push(msg);

const docs = ['README.md', 'deploy/k8s/overlays/prod/README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const en = read('docs/operations.md');
const ru = read('docs/operations.ru.md');

// 1. The same sections.
const levels = (text) => text.split('\n').filter((l) => /^#{1,4} /.test(l)).map((l) => l.match(/^#+/)[0].length);
const [enLevels, ruLevels] = [levels(en), levels(ru)];
if (enLevels.join() !== ruLevels.join()) {
  fail(`operations.md has sections at levels ${enLevels.join('')}, operations.ru.md ${ruLevels.join('')}: give them the same sections in the same order`);
}

// 2. Settings: documented ⇔ read.
const schemaFiles = ['packages/config/src/index.ts', ...readdirSync(path.join(root, 'services')).map((s) => `services/${s}/src/env.ts`).filter((f) => existsSync(path.join(root, f)))];
const read_ = new Set();
for (const file of schemaFiles) for (const m of read(file).matchAll(/^\s+([A-Z][A-Z0-9_]+): Type\./gm)) read_.add(m[1]);
/** Names in the first cell of table rows: `| \`A\` / \`B\` | …` or README's `| \`A\` [default] | …`. */
const documented = (text) => {
  const names = new Set();
  for (const line of text.split('\n')) {
    const cell = /^\| ([^|]+)\|/.exec(line)?.[1];
    if (!cell) continue;
    for (const m of cell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]);
  }
  return names;
};
const readme = documented(read('README.md'));
const [enNames, ruNames] = [documented(en), documented(ru)];
// Variables the guide names that are not settings of a schema: the host's, the tests', the scripts'.
const NOT_SCHEMA = new Set(['NODE_ENV', 'PARLEY_ENV_FILE', 'SCHEDULE_BACKUP', 'SCHEDULE_CLEANUP', 'BACKUP_DIR', 'PARLEY_FAULT']);
for (const [name, names] of [['operations.md', enNames], ['operations.ru.md', ruNames]]) {
  for (const n of names) if (!read_.has(n) && !NOT_SCHEMA.has(n)) fail(`${name} documents ${n}, which no env schema reads`);
}
for (const n of read_) {
  if (!enNames.has(n) && !readme.has(n)) fail(`${n} is read by an env schema but has no row in operations.md or the README`);
  if (!ruNames.has(n) && !readme.has(n)) fail(`${n} is read by an env schema but has no row in operations.ru.md or the README`);
}
// The two guides document the same settings (a row the README has did not excuse a missing translation).
for (const n of enNames) if (!ruNames.has(n)) fail(`operations.md documents ${n}, operations.ru.md does not`);
for (const n of ruNames) if (!enNames.has(n)) fail(`operations.ru.md documents ${n}, operations.md does not`);

// 3. Commands.
const scripts = JSON.parse(read('package.json')).scripts;
const workspaceScripts = (name) => {
  for (const dir of ['packages', 'services', 'clients']) {
    for (const ws of readdirSync(path.join(root, dir))) {
      const file = path.join(root, dir, ws, 'package.json');
      if (existsSync(file) && JSON.parse(readFileSync(file, 'utf8')).name === name) return JSON.parse(readFileSync(file, 'utf8')).scripts ?? {};
    }
  }
  return {};
};
const parley = new Set([...read('bin/parley.mjs').matchAll(/^ {2}([a-z]+): \{ help:/gm)].map((m) => m[1]));
for (const doc of docs) {
  const text = read(doc);
  for (const m of text.matchAll(/npm run ([a-z][a-z:-]*)(?: -w (@parley\/[a-z-]+))?/g)) {
    // `npm run dev -w @parley/web`: a workspace's own script.
    const own = m[2] ? workspaceScripts(m[2]) : scripts;
    if (!(m[1] in own)) fail(`${doc}: \`npm run ${m[1]}${m[2] ? ` -w ${m[2]}` : ''}\` is not a script in ${m[2] ?? 'package.json'}`);
  }
  for (const m of text.matchAll(/`parley ([a-z]+)/g)) if (!parley.has(m[1]) && m[1] !== 'command') fail(`${doc}: \`parley ${m[1]}\` is not a command of bin/parley.mjs`);
}

// 4. Links, and their anchors.
/**
 * The anchors GitHub gives a markdown file's headings: the heading's text (link targets, emphasis
 * and code marks dropped) lower-cased, every character but letters, digits, `_`, `-` and spaces
 * dropped, spaces turned into `-`; a repeated slug gets `-1`, `-2`… Plus explicit `<a name|id>`.
 */
const anchorCache = new Map();
const anchorsOf = (file) => {
  if (anchorCache.has(file)) return anchorCache.get(file);
  const anchors = new Set();
  const seen = new Map();
  let fence = null;
  for (const line of read(file).split('\n')) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (f) {
      if (!fence) fence = f[1][0];
      else if (f[1][0] === fence) fence = null;
      continue;
    }
    if (fence) continue;
    for (const a of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(a[1]);
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const text = h[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '');
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  anchorCache.set(file, anchors);
  return anchors;
};
for (const doc of docs) {
  const text = read(doc);
  for (const m of text.matchAll(/\]\(([^)#\s]*)(#[^)\s]*)?\)/g)) {
    const target = m[1];
    if (/^[a-z]+:/.test(target) || (!target && !m[2])) continue;
    const resolved = target ? path.normalize(path.join(path.dirname(doc), target)) : doc;
    if (resolved.startsWith('..')) {
      fail(`${doc}: links outside the repository (${target})`);
      continue;
    }
    if (!existsSync(path.join(root, resolved))) {
      fail(`${doc}: link to missing ${target}`);
      continue;
    }
    if (!m[2] || m[2] === '#' || !resolved.endsWith('.md')) continue;
    let anchor;
    try {
      anchor = decodeURIComponent(m[2].slice(1));
    } catch {
      anchor = m[2].slice(1);
    }
    if (!anchorsOf(resolved).has(anchor)) fail(`${doc}: link to ${target || ''}${m[2]}, which no heading of ${resolved} has`);
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
console.log(`check-docs: ${docs.length} documents, ${read_.size} settings, both operations guides in step`);
