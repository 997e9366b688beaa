// Offline checks of the deployment files, run by scripts/check-deploy.sh (after the build: the
// principals and the generated file names come from @parley/contracts and @parley/secrets):
//   node scripts/check-deploy.mjs compose
//   node scripts/check-deploy.mjs k8s <overlay> <built.yaml> [files of objects made out of band...]
//   node scripts/check-deploy.mjs monitoring <built deploy/k8s/monitoring.yaml> <built overlay.yaml>
//   node scripts/check-deploy.mjs objects <manifest.yaml...>
// compose: both compose files parse and hang together (images, volumes, mounted files, ports), and
// keep the trust boundary: every secret required with no fallback, each container only the secrets
// it uses and only its own NATS nkey, NATS started with the generated users, nothing but the
// gateway (and Grafana) published on every interface, Prometheus without --web.enable-lifecycle.
// k8s: every object of a built overlay is valid against the Kubernetes schema (kubernetes-models),
// every reference (ConfigMap, Secret and its key, PVC, HPA target) resolves, every pod is
// restricted, and each Parley container signs in to NATS with its own nkey from a Secret and reads
// secrets by name and key.
// The k8s check also follows the job metrics through the NetworkPolicies (CronJobs to the
// Pushgateway, Prometheus to it and to the metrics ports).
// monitoring: deploy/k8s/monitoring (ServiceMonitors, the generated PrometheusRule) is valid against
// the Prometheus operator's CRDs and fits the overlay's Services and deploy/monitoring/rules.
// objects: manifests applied apart from an overlay (e.g. overlays/prod/nats-networkpolicy.yaml)
// are valid against the schema (the Gateway API's kinds too).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { PRINCIPALS } from '@parley/contracts';
import { SECRET_FILES } from '@parley/secrets';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const problems = [];
const fail = (msg) => problems.push(msg);
// The processes that make spans start with tracing's loader hook (docs/operations.md, Tracing).
const TRACED = ['gateway', 'users', 'messages', 'retention'];
const startsTraced = (command) => Array.isArray(command) && command.join(' ').startsWith('node --import @parley/telemetry/register ');

/**
 * Who may hold which secret setting (services/*\/src/env.ts), and who must. backup may hold what
 * users and messages need: restore starts them as child processes with its environment.
 */
const MAY_HAVE = {
  JWT_SECRET: ['gateway', 'users', 'backup', 'scheduler'],
  GATEWAY_SIGNING_KEY: ['gateway'],
  GATEWAY_PUBLIC_KEY: ['users', 'messages', 'backup', 'scheduler'],
  DATABASE_URL: ['users', 'messages', 'backup', 'scheduler'],
  CACHE_KEY: ['users', 'messages', 'backup', 'scheduler'],
  REDIS_PASSWORD: ['users', 'messages', 'backup', 'scheduler', 'redis'],
};
const MUST_HAVE = {
  JWT_SECRET: ['gateway', 'users'],
  GATEWAY_SIGNING_KEY: ['gateway'],
  GATEWAY_PUBLIC_KEY: ['users', 'messages'],
  DATABASE_URL: ['users', 'messages', 'backup'],
  CACHE_KEY: ['users', 'messages'],
  REDIS_PASSWORD: ['users', 'messages'],
};
/** The seeds the backup job needs: its own and those of the processes restore starts. Not the gateway's. */
const BACKUP_SEEDS = ['backup', 'users', 'messages', 'retention'];
/** What `npm run secrets` writes, relative to its --out folder (./secrets for compose). */
const GENERATED = new Set([SECRET_FILES.env, SECRET_FILES.natsAuthorization, ...PRINCIPALS.map((p) => `${SECRET_FILES.nkeyDir}/${p}.nk`)]);
const nkeyFile = (p) => `${SECRET_FILES.nkeyDir}/${p}.nk`;

// ---------------------------------------------------------------- compose

/** `${VAR:?message}` with no "-" in the message (compose may read a hyphen before the `?` as a default). */
const REQUIRED_VAR = (name) => new RegExp(`^\\$\\{${name}:\\?[^}-]+\\}$`);
/** Compose variables that hold a secret (or must match one): required everywhere, never defaulted. */
const COMPOSE_SECRET_VARS = ['JWT_SECRET', 'GATEWAY_SIGNING_KEY', 'GATEWAY_PUBLIC_KEY', 'GRAFANA_ADMIN_PASSWORD', 'POSTGRES_PASSWORD', 'REDIS_PASSWORD', 'CACHE_KEY'];
/** Container settings that must come from one of those variables, never a literal. */
const COMPOSE_SECRET_ENV = {
  JWT_SECRET: 'JWT_SECRET',
  GATEWAY_SIGNING_KEY: 'GATEWAY_SIGNING_KEY',
  GATEWAY_PUBLIC_KEY: 'GATEWAY_PUBLIC_KEY',
  POSTGRES_PASSWORD: 'POSTGRES_PASSWORD',
  REDIS_PASSWORD: 'REDIS_PASSWORD',
  CACHE_KEY: 'CACHE_KEY',
  GF_SECURITY_ADMIN_PASSWORD: 'GRAFANA_ADMIN_PASSWORD',
};

/** Every string in a parsed YAML value, with where it is. */
function* strings(value, where) {
  if (typeof value === 'string') yield [value, where];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, `${where}[${i}]`);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) yield* strings(v, `${where}.${k}`);
}

/** A service's environment as a map (compose also accepts a list of KEY=value). */
function envOf(s) {
  if (Array.isArray(s.environment)) return Object.fromEntries(s.environment.map((e) => [String(e).split('=')[0], String(e).slice(String(e).indexOf('=') + 1)]));
  return s.environment ?? {};
}

/** A port entry, short (`[IP:][HOST:]CONTAINER[/proto]`) or long syntax. No host IP: every interface. */
function parsePort(p) {
  if (typeof p === 'object') return { hostIp: p.host_ip ?? '', published: p.published === undefined ? '' : String(p.published), target: String(p.target) };
  let s = String(p).replace(/\/(tcp|udp|sctp)$/, '');
  let hostIp = '';
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(s);
  if (v6) [, hostIp, s] = v6;
  const parts = s.split(':');
  if (parts.length === 3) hostIp = parts.shift();
  // A container port alone is published on a random host port, on every interface.
  return parts.length === 1 ? { hostIp, published: '', target: parts[0] } : { hostIp, published: parts[0], target: parts[1] };
}
const loopback = (ip) => /^127\.\d+\.\d+\.\d+$/.test(ip) || ip === '::1' || ip === 'localhost';

/** Files a service sees: compose secrets (/run/secrets/…), configs (/…) and bind mounts of ./ paths. */
function mountsOf(s, top) {
  const entry = (m) => (typeof m === 'string' ? { source: m } : m);
  const mounts = [];
  for (const m of (s.secrets ?? []).map(entry)) {
    const target = !m.target ? `/run/secrets/${m.source}` : m.target.startsWith('/') ? m.target : `/run/secrets/${m.target}`;
    mounts.push({ kind: 'secret', source: m.source, file: top.secrets[m.source]?.file, target });
  }
  for (const m of (s.configs ?? []).map(entry)) {
    const target = !m.target ? `/${m.source}` : m.target.startsWith('/') ? m.target : `/${m.target}`;
    mounts.push({ kind: 'config', source: m.source, file: top.configs[m.source]?.file, target });
  }
  for (const v of s.volumes ?? []) {
    const [src, target] = typeof v === 'string' ? v.split(':') : [v.source, v.target];
    if (String(src).startsWith('.')) mounts.push({ kind: 'bind', source: src, file: src, target });
  }
  return mounts.map((m) => ({ ...m, file: m.file === undefined ? undefined : path.posix.normalize(m.file) }));
}

async function checkCompose() {
  const load = (f) => parse(readFileSync(path.join(root, f), 'utf8'), { merge: true });
  const base = load('docker-compose.yml');
  const mon = load('docker-compose.monitoring.yml');
  const volumes = new Set([...Object.keys(base.volumes ?? {}), ...Object.keys(mon.volumes ?? {})]);
  const top = { secrets: { ...base.secrets, ...mon.secrets }, configs: { ...base.configs, ...mon.configs } };
  const services = { ...base.services };
  for (const [name, s] of Object.entries(mon.services)) {
    if (!services[name] && !s.image) fail(`monitoring: ${name} overrides no service of docker-compose.yml and has no image`);
    services[name] = { ...services[name], ...s, environment: { ...envOf(services[name] ?? {}), ...envOf(s) } };
  }

  // Settings: every Parley container reads the operator's optional settings.env (issue 20: compose
  // passed none of the retention, cache or backup settings into the containers).
  for (const [name, svc] of Object.entries(base.services)) {
    if (svc.image !== 'parley:local') continue;
    const files = (svc.env_file ?? []).map((f) => (typeof f === 'string' ? { path: f, required: true } : f));
    if (!files.some((f) => f.path === './settings.env' && f.required === false)) fail(`compose: ${name} does not read the optional ./settings.env (env_file with required: false)`);
  }

  // Secrets: required where used, never defaulted, never written down.
  for (const [doc, file] of [[base, 'docker-compose.yml'], [mon, 'docker-compose.monitoring.yml']]) {
    for (const [text, where] of strings(doc, file)) {
      for (const m of text.matchAll(/\$(\$|\{[^}]*\}|[A-Za-z_]\w*)/g)) {
        if (m[1] === '$') continue;
        const name = /^\{?([A-Za-z_]\w*)/.exec(m[1])?.[1];
        if (!COMPOSE_SECRET_VARS.includes(name)) continue;
        if (!REQUIRED_VAR(name).test(m[0])) fail(`compose: ${where} uses ${m[0].slice(0, 40)}…: a secret must be \${${name}:?message} (required, no fallback, no "-" in the message)`);
      }
    }
  }
  for (const name of Object.keys(top.secrets)) if (!top.secrets[name]?.file) fail(`compose: secret ${name} has no file`);
  for (const [kind, defs] of Object.entries(top)) {
    for (const [name, def] of Object.entries(defs)) {
      const file = path.posix.normalize(def?.file ?? '');
      if (file.startsWith('secrets/')) {
        if (!GENERATED.has(file.slice('secrets/'.length))) fail(`compose: ${kind} ${name} (${def.file}) is not a file npm run secrets writes`);
      } else if (!existsSync(path.join(root, file))) fail(`compose: ${kind} ${name} file ${def?.file} is missing`);
    }
  }

  for (const [name, s] of Object.entries(services)) {
    const env = envOf(s);
    if (!s.image && !s.build) fail(`compose: ${name} has neither image nor build`);
    if (s.image && !s.build && !/:[\w.-]+$/.test(s.image)) fail(`compose: ${name} image ${s.image} is not pinned to a tag`);
    if (s.network_mode === 'host') fail(`compose: ${name} uses the host's network: every port of it is public`);
    for (const v of s.volumes ?? []) {
      const src = typeof v === 'string' ? v.split(':')[0] : v.source;
      if (String(src).startsWith('.')) {
        if (!existsSync(path.join(root, src))) fail(`compose: ${name} mounts missing ${src}`);
      } else if (!volumes.has(src)) fail(`compose: ${name} uses undeclared volume ${src}`);
    }
    for (const m of [...(s.secrets ?? []), ...(s.configs ?? [])]) {
      const source = typeof m === 'string' ? m : m.source;
      if (!top.secrets[source] && !top.configs[source]) fail(`compose: ${name} mounts undeclared secret or config ${source}`);
    }
    for (const dep of Object.keys(Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, 1])) : (s.depends_on ?? {}))) {
      if (!services[dep]) fail(`compose: ${name} depends on unknown ${dep}`);
    }
    for (const p of (s.ports ?? []).map(parsePort)) {
      if (!loopback(p.hostIp) && !['gateway', 'grafana'].includes(name)) fail(`compose: ${name} publishes ${p.target} on every interface (only the gateway and Grafana may; bind it to 127.0.0.1 or drop it)`);
    }
    for (const [key, variable] of Object.entries(COMPOSE_SECRET_ENV)) {
      if (key in env && !REQUIRED_VAR(variable).test(String(env[key]))) fail(`compose: ${name} ${key} must be \${${variable}:?message}, not a value or a fallback`);
    }
    if ('DATABASE_URL' in env && !/^postgres(ql)?:\/\/[^:@/]+:\$\{POSTGRES_PASSWORD:\?[^}-]+\}@/.test(String(env.DATABASE_URL))) {
      fail(`compose: ${name} DATABASE_URL must take its password from \${POSTGRES_PASSWORD:?message}`);
    }
    for (const [key, allowed] of Object.entries(MAY_HAVE)) if (key in env && !allowed.includes(name)) fail(`compose: ${name} gets ${key}, which it does not use`);
  }
  for (const [key, needed] of Object.entries(MUST_HAVE)) for (const name of needed) if (!(key in envOf(services[name]))) fail(`compose: ${name} lacks ${key}`);

  // NATS users: each process signs in with its own seed, mounted from the generated folder.
  const isSeed = (m) => m.file?.startsWith(`secrets/${SECRET_FILES.nkeyDir}/`);
  for (const [name, s] of Object.entries(services)) {
    const env = envOf(s);
    const seeds = mountsOf(s, top).filter(isSeed);
    // The scheduler runs the backup and retention jobs as children: it holds what the backup job holds.
    if (!PRINCIPALS.includes(name) && name !== 'scheduler') {
      if (seeds.length > 0 || env.NATS_NKEY_FILE || env.NATS_NKEY_DIR) fail(`compose: ${name} is no Parley process but gets NATS seeds`);
      continue;
    }
    if (name === 'backup' || name === 'scheduler') {
      const dir = env.NATS_NKEY_DIR;
      if (!dir) fail(`compose: ${name} needs NATS_NKEY_DIR (restore starts users, messages and retention with its environment)`);
      if (env.NATS_NKEY_FILE) fail(`compose: ${name} must not set NATS_NKEY_FILE: restore's child processes would inherit it and sign in as backup`);
      for (const m of seeds) if (m.target !== `${dir}/${path.posix.basename(m.file)}`) fail(`compose: ${name} mounts ${m.file} at ${m.target}, not as ${dir}/${path.posix.basename(m.file)}`);
      const have = seeds.map((m) => path.posix.basename(m.file, '.nk')).sort();
      if (have.join() !== [...BACKUP_SEEDS].sort().join()) fail(`compose: ${name} must mount exactly the seeds of ${BACKUP_SEEDS.join(', ')}; it mounts ${have.join(', ') || 'none'}`);
      continue;
    }
    if (env.NATS_NKEY_DIR) fail(`compose: ${name} must use NATS_NKEY_FILE (its own seed), not NATS_NKEY_DIR`);
    const own = seeds.find((m) => m.target === env.NATS_NKEY_FILE);
    if (!env.NATS_NKEY_FILE || !own) fail(`compose: ${name} needs NATS_NKEY_FILE pointing at a mounted seed`);
    else if (own.file !== `secrets/${nkeyFile(name)}`) fail(`compose: ${name}'s NATS_NKEY_FILE is ${own.file}, not its own secrets/${nkeyFile(name)}`);
    if (seeds.length > 1) fail(`compose: ${name} mounts other processes' seeds: ${seeds.map((m) => m.file).join(', ')}`);
  }
  // The NATS server runs the checked-in configuration, which includes the generated users.
  const nats = services.nats;
  const args = (nats.command ?? []).map(String);
  const configAt = args[args.findIndex((a) => a === '--config' || a === '-c') + 1];
  const natsMounts = mountsOf(nats, top);
  const config = natsMounts.find((m) => configAt && m.target === configAt);
  if (!config) fail('compose: nats must run with --config <a mounted configuration file>');
  else {
    const includes = [...readFileSync(path.join(root, config.file), 'utf8').matchAll(/^\s*include\s+["']?([^"';\s]+)/gm)].map((m) => path.posix.join(path.posix.dirname(configAt), m[1]));
    const auth = natsMounts.find((m) => m.file === `secrets/${SECRET_FILES.natsAuthorization}`);
    if (!auth || !includes.includes(auth.target)) fail(`compose: nats must mount secrets/${SECRET_FILES.natsAuthorization} where ${config.file} includes it (${includes.join(', ') || 'no include'})`);
  }

  // Ports and monitoring.
  const ports = (name) => (services[name].ports ?? []).map(parsePort);
  if (!ports('gateway').some((p) => p.published === '8080' && p.target === '8080')) fail('compose: the gateway must publish 8080');
  if (ports('grafana').map((p) => p.published).join() !== '3001') fail('compose: Grafana must publish 3001');
  for (const p of [...ports('prometheus'), ...ports('alertmanager')]) if (!loopback(p.hostIp)) fail(`compose: Prometheus and Alertmanager may be published on 127.0.0.1 only (${p.target})`);
  if (ports('prometheus').some((p) => p.published !== '9090')) fail('compose: Prometheus is reached on 9090');
  if ((services.prometheus.command ?? []).some((a) => String(a).startsWith('--web.enable-lifecycle'))) fail('compose: Prometheus must run without --web.enable-lifecycle (it lets any caller shut it down)');
  for (const name of ['gateway', 'users', 'messages']) {
    const port = String(services[name].environment.METRICS_PORT);
    if (ports(name).some((p) => p.target === port || p.published === port)) fail(`compose: ${name} publishes its metrics port ${port}`);
    if (services[name].environment.OTEL_EXPORTER_OTLP_ENDPOINT !== 'http://tempo:4318') fail(`compose: ${name} does not send traces to Tempo`);
  }
  for (const name of TRACED) if (!startsTraced(services[name].command)) fail(`compose: ${name} is not started with --import @parley/telemetry/register`);
  for (const job of ['retention', 'backup']) {
    if (!base.services[job]?.profiles?.includes('jobs')) fail(`compose: ${job} must be in profile jobs`);
    if (base.services[job]?.restart !== 'no') fail(`compose: ${job} is one-shot and must not restart`);
  }
  if (!/^grafana\/tempo:2\./.test(services.tempo.image)) fail('compose: Tempo must be pinned to 2.x');
  const targets = parse(readFileSync(path.join(root, 'deploy/monitoring/prometheus.yml'), 'utf8'))
    .scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
  for (const name of ['gateway', 'users', 'messages']) {
    const want = `${name}:${services[name].environment.METRICS_PORT}`;
    if (!targets.includes(want)) fail(`prometheus.yml does not scrape ${want}`);
  }
  console.log(`compose: ${Object.keys(services).length} services checked`);
}

// ---------------------------------------------------------------- Kubernetes

/** The packages of kinds from CRDs: the Gateway API's and the Prometheus operator's. */
const CRD_MODELS = { 'gateway.networking.k8s.io': '@kubernetes-models/gateway-api', 'monitoring.coreos.com': '@kubernetes-models/prometheus-operator' };

/** kubernetes-models module path for an apiVersion and kind: core `v1` or `<group>/<version>`. */
async function model(apiVersion, kind) {
  try {
    const pkg = CRD_MODELS[String(apiVersion).split('/')[0]] ?? 'kubernetes-models';
    const mod = await import(`${pkg}/${apiVersion}/${kind}`);
    return mod[kind];
  } catch {
    return undefined;
  }
}

function podSpecs(o) {
  if (o.kind === 'Deployment') return [o.spec.template.spec];
  if (o.kind === 'CronJob') return [o.spec.jobTemplate.spec.template.spec];
  return [];
}

const loadDocs = (file) => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS()).filter(Boolean);

async function validate(o, where) {
  const Model = await model(o.apiVersion, o.kind);
  if (!Model) return fail(`${where}: no schema for ${o.apiVersion} ${o.kind}`);
  // kustomize 5 wraps long base64 values over lines; the API server's decoder skips the newlines,
  // the schema's "byte" format does not.
  const data = o.kind === 'Secret' && o.data ? Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, String(v).replace(/\s/g, '')])) : o.data;
  try {
    new Model({ ...o, ...(data ? { data } : {}) }).validate();
  } catch (err) {
    fail(`${where}: ${err.message}`);
  }
}

/** The keys of a Secret or ConfigMap we have (built or made out of band); undefined when unknown. */
function keysOf(objects, kind, name) {
  const o = objects.get(`${kind}/${name}`);
  return o ? new Set([...Object.keys(o.data ?? {}), ...Object.keys(o.stringData ?? {}), ...Object.keys(o.binaryData ?? {})]) : undefined;
}

/** The Secret names a volume reads (a Secret volume, or the Secret sources of a projected one). */
const volumeSecrets = (v) => [...(v.secret ? [v.secret.secretName] : []), ...(v.projected?.sources ?? []).filter((s) => s.secret).map((s) => s.secret.name)];

/** The volume whose mount holds `file` (a mount path that is the file or a folder above it). */
function volumeHolding(spec, container, file) {
  const mount = (container.volumeMounts ?? []).find((m) => file === m.mountPath || file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  return mount && (spec.volumes ?? []).find((v) => v.name === mount.name);
}

/** Each Parley process's pod: its NATS seed from its own Secret, its secrets by name and key only. */
function checkParleyContainer(where, spec, c, objects) {
  const p = c.name;
  const env = c.env ?? [];
  const byName = new Map(env.map((e) => [e.name, e]));
  const secretRef = (e) => e?.valueFrom?.secretKeyRef;
  for (const e of c.envFrom ?? []) if (e.secretRef) fail(`${where}/${p}: takes the whole Secret ${e.secretRef.name} (envFrom); name the keys it uses`);
  for (const key of ['JWT_SECRET', 'GATEWAY_SIGNING_KEY', 'POSTGRES_PASSWORD', 'SMTP_URL', 'REDIS_PASSWORD', 'CACHE_KEY']) {
    if (byName.has(key) && !secretRef(byName.get(key))) fail(`${where}/${p}: ${key} must come from a Secret`);
  }
  if (byName.has('GATEWAY_PUBLIC_KEY') && !secretRef(byName.get('GATEWAY_PUBLIC_KEY')) && !byName.get('GATEWAY_PUBLIC_KEY').valueFrom?.configMapKeyRef) {
    fail(`${where}/${p}: GATEWAY_PUBLIC_KEY must come from a Secret or ConfigMap (it is the installation's own)`);
  }
  const db = byName.get('DATABASE_URL');
  if (db && !secretRef(db)) {
    // A URL built by Kubernetes from a password variable defined before it (the dev overlay).
    const m = /^postgres(?:ql)?:\/\/[^:@/]+:\$\(([A-Z_][A-Z0-9_]*)\)@/.exec(db.value ?? '');
    const from = m && env.slice(0, env.indexOf(db)).find((e) => e.name === m[1]);
    if (!from || !secretRef(from)) fail(`${where}/${p}: DATABASE_URL must come from a Secret, or take its password as $(VAR) from a Secret-held variable before it`);
  }
  for (const [key, allowed] of Object.entries(MAY_HAVE)) if (byName.has(key) && !allowed.includes(p)) fail(`${where}/${p}: gets ${key}, which it does not use`);
  for (const [key, needed] of Object.entries(MUST_HAVE)) if (needed.includes(p) && !byName.has(key)) fail(`${where}/${p}: lacks ${key}`);

  const nkeySecrets = (spec.volumes ?? []).flatMap(volumeSecrets).filter((n) => n.startsWith('parley-nats-'));
  const file = byName.get('NATS_NKEY_FILE')?.value;
  const dir = byName.get('NATS_NKEY_DIR')?.value;
  if (p === 'backup') {
    if (file) fail(`${where}/backup: must not set NATS_NKEY_FILE: restore's child processes would inherit it and sign in as backup`);
    const v = dir && volumeHolding(spec, c, dir);
    const names = v ? volumeSecrets(v) : [];
    if (!v || names.length === 0) fail(`${where}/backup: needs NATS_NKEY_DIR on a mounted Secret (projected) volume of the seeds`);
    else if ([...names].sort().join() !== BACKUP_SEEDS.map((s) => `parley-nats-${s}`).sort().join()) fail(`${where}/backup: its seed folder must hold exactly ${BACKUP_SEEDS.join(', ')}, not ${names.join(', ')}`);
    for (const s of BACKUP_SEEDS) if (keysOf(objects, 'Secret', `parley-nats-${s}`)?.has(`${s}.nk`) === false) fail(`${where}/backup: Secret parley-nats-${s} has no key ${s}.nk`);
    if (nkeySecrets.length !== names.length) fail(`${where}/backup: mounts seeds outside NATS_NKEY_DIR`);
    return;
  }
  if (dir) fail(`${where}/${p}: must use NATS_NKEY_FILE (its own seed), not NATS_NKEY_DIR`);
  const v = file && volumeHolding(spec, c, file);
  if (!v?.secret) fail(`${where}/${p}: needs NATS_NKEY_FILE on a mounted Secret volume`);
  else if (v.secret.secretName !== `parley-nats-${p}`) fail(`${where}/${p}: its seed comes from ${v.secret.secretName}, not its own parley-nats-${p}`);
  else if (keysOf(objects, 'Secret', v.secret.secretName)?.has(path.posix.basename(file)) === false) fail(`${where}/${p}: Secret ${v.secret.secretName} has no key ${path.posix.basename(file)}`);
  if (nkeySecrets.some((n) => n !== `parley-nats-${p}`)) fail(`${where}/${p}: mounts other processes' seeds: ${nkeySecrets.join(', ')}`);
}

// ---------------------------------------------------------------- NetworkPolicy

/** Whether a label selector (matchLabels, matchExpressions) selects these labels; {} selects all. */
function selects(selector, labels = {}) {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** A pod: its namespace, its labels and its container ports by name. */
function podsOf(docs) {
  const pods = new Map();
  for (const o of docs) {
    const template = o.kind === 'Deployment' ? o.spec.template : o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template : undefined;
    if (!template) continue;
    const ports = Object.fromEntries(template.spec.containers.flatMap((c) => c.ports ?? []).filter((p) => p.name).map((p) => [p.name, p.containerPort]));
    pods.set(`${o.kind}/${o.metadata.name}`, { namespace: o.metadata.namespace ?? 'default', labels: template.metadata?.labels ?? {}, ports });
  }
  return pods;
}

/** Whether a policy rule's peers (`from` or `to`, seen from the policy's namespace) include this pod. */
function peerMatches(peers, policyNamespace, pod) {
  if (!peers || peers.length === 0) return true;
  return peers.some((peer) => {
    if (peer.ipBlock) return false; // pod addresses are not known offline: not counted as a match
    const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, { 'kubernetes.io/metadata.name': pod.namespace }) : pod.namespace === policyNamespace;
    return nsOk && (!peer.podSelector || selects(peer.podSelector, pod.labels));
  });
}

/** Whether a rule's ports include the destination's TCP port (a number, or the name of one of its ports). */
function portMatches(ports, dst, port) {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => (p.protocol ?? 'TCP') === 'TCP' && (p.port === undefined || p.port === port || dst.ports[p.port] === port || (p.endPort !== undefined && port >= p.port && port <= p.endPort)));
}

/**
 * Whether the policies let `src` open a TCP connection to `dst` on `port` (the pod's port): egress
 * from src (when src is in the cluster and isolated for egress) and ingress to dst.
 */
function connects(policies, src, dst, port) {
  const applying = (pod, type) => policies.filter((np) => (np.metadata.namespace ?? 'default') === pod.namespace && selects(np.spec.podSelector, pod.labels) && (np.spec.policyTypes ?? ['Ingress', ...(np.spec.egress ? ['Egress'] : [])]).includes(type));
  const out = src.external ? [] : applying(src, 'Egress');
  const egressOk = out.length === 0 || out.some((np) => (np.spec.egress ?? []).some((r) => peerMatches(r.to, np.metadata.namespace ?? 'default', dst) && portMatches(r.ports, dst, port)));
  const inn = applying(dst, 'Ingress');
  const ingressOk = inn.length === 0 || inn.some((np) => (np.spec.ingress ?? []).some((r) => peerMatches(r.from, np.metadata.namespace ?? 'default', src) && portMatches(r.ports, dst, port)));
  return egressOk && ingressOk;
}

/**
 * The job metrics' path (issue 20): PUSHGATEWAY_URL in the jobs' settings names a Service of the
 * overlay, both CronJobs may reach its pods and Prometheus (namespace `monitoring`) may scrape
 * them; the long-running services may not push. Prometheus also reaches every metrics port.
 */
function checkMetricsPaths(overlay, docs, objects) {
  const policies = docs.filter((o) => o.kind === 'NetworkPolicy');
  const pods = podsOf(docs);
  const prometheus = { namespace: 'monitoring', labels: {}, ports: {}, external: true };
  const servicePort = (svcName, port) => {
    const svc = objects.get(`Service/${svcName}`);
    const sp = svc?.spec.ports.find((p) => p.port === port || p.name === port);
    if (!sp) return undefined;
    const target = [...pods.entries()].find(([k, p]) => k.startsWith('Deployment/') && p.namespace === (svc.metadata.namespace ?? 'default') && selects({ matchLabels: svc.spec.selector }, p.labels));
    if (!target) return undefined;
    const tp = sp.targetPort ?? sp.port;
    return { pod: target[1], name: target[0], port: typeof tp === 'number' ? tp : target[1].ports[tp] };
  };
  for (const name of ['gateway', 'users', 'messages']) {
    const t = servicePort(name, 'metrics');
    if (!t) fail(`${overlay}: Service/${name} has no port named metrics on its pods`);
    else if (!connects(policies, prometheus, t.pod, t.port)) fail(`${overlay}: Prometheus (namespace monitoring) cannot reach ${name}'s metrics port ${t.port}`);
  }
  for (const job of ['retention', 'backup']) {
    const cron = objects.get(`CronJob/${job}`);
    if (!cron) continue;
    const c = cron.spec.jobTemplate.spec.template.spec.containers[0];
    const settings = {};
    for (const e of c.envFrom ?? []) if (e.configMapRef) Object.assign(settings, objects.get(`ConfigMap/${e.configMapRef.name}`)?.data ?? {});
    for (const e of c.env ?? []) if (e.value !== undefined) settings[e.name] = e.value;
    const url = settings.PUSHGATEWAY_URL;
    if (!url) {
      fail(`${where(overlay, cron)}: PUSHGATEWAY_URL is not set: its metrics never reach Prometheus`);
      continue;
    }
    const u = new URL(url);
    const host = u.hostname.split('.');
    if (host.length > 1 && host[1] !== cron.metadata.namespace) {
      fail(`${where(overlay, cron)}: PUSHGATEWAY_URL ${url} is not a Service of the overlay's namespace`);
      continue;
    }
    const t = servicePort(host[0], Number(u.port || 80));
    if (!t) {
      fail(`${where(overlay, cron)}: PUSHGATEWAY_URL ${url}: no Service ${host[0]} with port ${u.port || 80} in front of a Deployment`);
      continue;
    }
    if (!connects(policies, pods.get(`CronJob/${job}`), t.pod, t.port)) fail(`${where(overlay, cron)}: its pods may not connect to ${t.name} on ${t.port} (NetworkPolicy)`);
    if (!connects(policies, prometheus, t.pod, t.port)) fail(`${overlay}: Prometheus (namespace monitoring) cannot scrape ${t.name} on ${t.port}`);
    for (const name of ['gateway', 'users', 'messages']) {
      const pod = pods.get(`Deployment/${name}`);
      if (pod && connects(policies, pod, t.pod, t.port)) fail(`${overlay}: Deployment/${name} may connect to ${t.name} on ${t.port}: only the jobs push`);
    }
  }
}
const where = (overlay, o) => `${overlay}: ${o.kind}/${o.metadata.name}`;

async function checkK8s(overlay, file, externalFiles) {
  const docs = loadDocs(file);
  if (docs.length === 0) fail(`${overlay}: no objects`);
  const objects = new Map(docs.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
  for (const f of externalFiles) for (const o of loadDocs(f)) objects.set(`${o.kind}/${o.metadata.name}`, o);
  const have = new Set(objects.keys());
  const exists = (kind, ref) => ref.optional === true || have.has(`${kind}/${ref.name}`);
  const hasKey = (kind, ref) => ref.optional === true || keysOf(objects, kind, ref.name)?.has(ref.key) !== false;
  for (const o of docs) {
    const where = `${overlay}: ${o.kind}/${o.metadata?.name}`;
    await validate(o, where);
    for (const spec of podSpecs(o)) {
      const psc = spec.securityContext ?? {};
      if (psc.runAsNonRoot !== true) fail(`${where}: pod must set runAsNonRoot`);
      if (psc.seccompProfile?.type !== 'RuntimeDefault') fail(`${where}: pod must use seccomp RuntimeDefault`);
      for (const v of spec.volumes ?? []) {
        if (v.persistentVolumeClaim && !have.has(`PersistentVolumeClaim/${v.persistentVolumeClaim.claimName}`)) fail(`${where}: PVC ${v.persistentVolumeClaim.claimName} missing`);
        if (v.secret && !exists('Secret', { name: v.secret.secretName, optional: v.secret.optional })) fail(`${where}: Secret ${v.secret.secretName} missing`);
        if (v.configMap && !exists('ConfigMap', v.configMap)) fail(`${where}: ConfigMap ${v.configMap.name} missing`);
        for (const s of v.projected?.sources ?? []) {
          if (s.secret && !exists('Secret', s.secret)) fail(`${where}: Secret ${s.secret.name} missing`);
          if (s.configMap && !exists('ConfigMap', s.configMap)) fail(`${where}: ConfigMap ${s.configMap.name} missing`);
        }
      }
      const template = o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template : o.spec.template;
      const parley = template.metadata?.labels?.['app.kubernetes.io/part-of'] === 'parley';
      for (const c of spec.containers) {
        const sc = c.securityContext ?? {};
        if (sc.allowPrivilegeEscalation !== false) fail(`${where}/${c.name}: allowPrivilegeEscalation must be false`);
        if (!(sc.capabilities?.drop ?? []).includes('ALL')) fail(`${where}/${c.name}: must drop ALL capabilities`);
        if (!c.resources?.requests || !c.resources?.limits?.memory) fail(`${where}/${c.name}: needs requests and a memory limit`);
        if (o.kind === 'Deployment' && !c.readinessProbe) fail(`${where}/${c.name}: needs a readiness probe`);
        for (const e of c.envFrom ?? []) {
          if (e.configMapRef && !exists('ConfigMap', e.configMapRef)) fail(`${where}: ConfigMap ${e.configMapRef.name} missing`);
          if (e.secretRef && !exists('Secret', e.secretRef)) fail(`${where}: Secret ${e.secretRef.name} missing`);
        }
        for (const e of c.env ?? []) {
          for (const [kind, ref] of [['Secret', e.valueFrom?.secretKeyRef], ['ConfigMap', e.valueFrom?.configMapKeyRef]]) {
            if (!ref) continue;
            if (!exists(kind, ref)) fail(`${where}: ${kind} ${ref.name} missing`);
            else if (!hasKey(kind, ref)) fail(`${where}: ${kind} ${ref.name} has no key ${ref.key}`);
          }
        }
        if (TRACED.includes(c.name) && !startsTraced(c.command)) fail(`${where}/${c.name}: not started with --import @parley/telemetry/register`);
        if (c.image === 'parley') fail(`${where}/${c.name}: the overlay must set the image tag`);
        if (parley && PRINCIPALS.includes(c.name)) checkParleyContainer(where, spec, c, objects);
      }
    }
    if (o.kind === 'HorizontalPodAutoscaler' && !have.has(`${o.spec.scaleTargetRef.kind}/${o.spec.scaleTargetRef.name}`)) fail(`${where}: target missing`);
    // The HPA owns the count: a Deployment's replicas would reset it on every `kubectl apply -k`
    // (and drop the gateways' sockets it scaled up). Issue 20.
    if (o.kind === 'HorizontalPodAutoscaler') {
      const target = objects.get(`${o.spec.scaleTargetRef.kind}/${o.spec.scaleTargetRef.name}`);
      if (target?.spec?.replicas !== undefined) fail(`${where}: ${target.kind}/${target.metadata.name} sets replicas, which its HPA owns`);
    }
    if (o.kind === 'CronJob' && o.spec.concurrencyPolicy !== 'Forbid') fail(`${where}: concurrencyPolicy must be Forbid`);
  }
  for (const name of ['gateway', 'users', 'messages']) {
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget']) if (!have.has(`${kind}/${name}`)) fail(`${overlay}: ${kind}/${name} missing`);
  }
  for (const want of ['HorizontalPodAutoscaler/gateway', 'HorizontalPodAutoscaler/messages', 'CronJob/retention', 'CronJob/backup', 'NetworkPolicy/default-deny']) {
    if (!have.has(want)) fail(`${overlay}: ${want} missing`);
  }
  // An in-cluster NATS (the dev overlay's) runs with the generated users from a Secret.
  const nats = objects.get('Deployment/nats');
  if (nats) {
    const spec = nats.spec.template.spec;
    const c = spec.containers[0];
    const args = [...(c.command ?? []), ...(c.args ?? [])].map(String);
    const config = args[args.findIndex((a) => a === '--config' || a === '-c') + 1];
    const v = config && volumeHolding(spec, c, config);
    if (!v?.secret) fail(`${overlay}: Deployment/nats must run with --config <the generated users, from a Secret>`);
    else if (keysOf(objects, 'Secret', v.secret.secretName)?.has(SECRET_FILES.natsAuthorization) !== true) fail(`${overlay}: Deployment/nats reads ${config} from Secret ${v.secret.secretName}, which has no ${SECRET_FILES.natsAuthorization}`);
  }
  // Nothing credential-like is written into a kustomization: Secrets come from generated files.
  for (const k of [`deploy/k8s/overlays/${overlay}/kustomization.yaml`, 'deploy/k8s/base/kustomization.yaml']) {
    for (const g of parse(readFileSync(path.join(root, k), 'utf8')).secretGenerator ?? []) if (g.literals) fail(`${k}: Secret ${g.name} has literal values; generate them (npm run secrets)`);
  }
  checkMetricsPaths(overlay, docs, objects);
  // Production runs behind a proxy (ingress.yaml, httproute.yaml): the gateway must know its public
  // address, the browsers' origin and the proxies to believe, all for the host those files serve.
  if (overlay === 'prod') {
    const config = docs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('parley-config'))?.data ?? {};
    for (const key of ['PUBLIC_URL', 'WS_ALLOWED_ORIGINS', 'TRUSTED_PROXIES']) if (!config[key]) fail(`prod: parley-config has no ${key} (behind a proxy it must be set)`);
    const host = config.PUBLIC_URL ? new URL(config.PUBLIC_URL).host : '';
    if (config.WS_ALLOWED_ORIGINS && !config.WS_ALLOWED_ORIGINS.split(',').includes(`https://${host}`)) fail(`prod: WS_ALLOWED_ORIGINS does not admit PUBLIC_URL's origin https://${host}`);
    for (const example of ['ingress.yaml', 'httproute.yaml']) {
      const text = readFileSync(path.join(root, 'deploy/k8s/overlays/prod', example), 'utf8');
      if (!text.includes(host)) fail(`prod: ${example} does not serve PUBLIC_URL's host ${host}`);
    }
  }
  // The attachment store: ReadWriteMany in production (pods on every node mount it); the dev
  // overlay runs on one node, where kind's local-path class binds ReadWriteOnce only.
  for (const pvc of docs.filter((o) => o.kind === 'PersistentVolumeClaim')) {
    const modes = pvc.spec.accessModes ?? [];
    if (overlay === 'dev' && modes.includes('ReadWriteMany')) fail(`${where(overlay, pvc)}: ReadWriteMany stays Pending on kind's default storage class`);
    if (overlay === 'prod' && pvc.metadata.name === 'parley-attachments' && !modes.includes('ReadWriteMany')) fail(`${where(overlay, pvc)}: must be ReadWriteMany (every node's pods mount it)`);
  }
  console.log(`k8s ${overlay}: ${docs.length} objects valid`);
}

/**
 * deploy/k8s/monitoring (built) against an overlay's build: every object valid against its CRD's
 * schema; each ServiceMonitor selects Services of the overlay that have its endpoints' ports, and
 * gateway, users, messages and the Pushgateway are all scraped (the Pushgateway with honorLabels);
 * the PrometheusRule carries exactly the groups of deploy/monitoring/rules/*.yml.
 */
async function checkMonitoring(file, overlayFile) {
  const docs = loadDocs(file);
  const services = loadDocs(overlayFile).filter((o) => o.kind === 'Service');
  for (const o of docs) await validate(o, `monitoring: ${o.kind}/${o.metadata?.name}`);
  const scraped = new Map();
  for (const sm of docs.filter((o) => o.kind === 'ServiceMonitor')) {
    const at = `monitoring: ServiceMonitor/${sm.metadata.name}`;
    const nsSel = sm.spec.namespaceSelector ?? {};
    const inNs = (svc) => nsSel.any === true || (nsSel.matchNames ?? [sm.metadata.namespace]).includes(svc.metadata.namespace);
    const selected = services.filter((svc) => inNs(svc) && selects(sm.spec.selector, svc.metadata.labels));
    if (selected.length === 0) fail(`${at}: selects no Service of the overlay (namespace ${sm.metadata.namespace})`);
    for (const svc of selected) {
      for (const ep of sm.spec.endpoints ?? []) {
        if (!svc.spec.ports.some((p) => p.name === ep.port)) fail(`${at}: Service/${svc.metadata.name} has no port named ${ep.port}`);
        else scraped.set(svc.metadata.name, ep);
      }
    }
  }
  for (const name of ['gateway', 'users', 'messages', 'pushgateway']) if (!scraped.has(name)) fail(`monitoring: no ServiceMonitor scrapes Service/${name}`);
  if (scraped.has('pushgateway') && scraped.get('pushgateway').honorLabels !== true) fail('monitoring: the Pushgateway must be scraped with honorLabels (the pushed job labels)');
  const rules = docs.filter((o) => o.kind === 'PrometheusRule');
  const { ruleGroups } = await import('./prometheus-rule.mjs');
  if (rules.length !== 1) fail(`monitoring: ${rules.length} PrometheusRules, want one`);
  else if (!isDeepStrictEqual(rules[0].spec.groups, ruleGroups())) fail('monitoring: the PrometheusRule differs from deploy/monitoring/rules/*.yml (node scripts/prometheus-rule.mjs)');
  console.log(`monitoring: ${docs.length} objects valid, ${scraped.size} Services scraped, ${rules[0]?.spec.groups.flatMap((g) => g.rules).length ?? 0} rules`);
}

async function checkObjects(files) {
  const all = files.flatMap((f) => loadDocs(f).map((o) => [f, o]));
  for (const [f, o] of all) await validate(o, `${path.relative(root, f)}: ${o.kind}/${o.metadata?.name}`);
  // An example route attaches to the listener of the Gateway it comes with.
  for (const [f, o] of all.filter(([, x]) => x.kind === 'HTTPRoute')) {
    for (const ref of o.spec.parentRefs ?? []) {
      const gw = all.find(([, x]) => x.kind === (ref.kind ?? 'Gateway') && x.metadata.name === ref.name)?.[1];
      if (!gw) fail(`${path.relative(root, f)}: HTTPRoute/${o.metadata.name}: no Gateway ${ref.name} beside it`);
      else if (ref.sectionName && !gw.spec.listeners.some((l) => l.name === ref.sectionName)) fail(`${path.relative(root, f)}: HTTPRoute/${o.metadata.name}: Gateway ${ref.name} has no listener ${ref.sectionName}`);
    }
  }
  console.log(`objects: ${files.length} files valid`);
}

const [what, ...args] = process.argv.slice(2);
if (what === 'compose') await checkCompose();
else if (what === 'k8s') await checkK8s(args[0], args[1], args.slice(2));
else if (what === 'monitoring') await checkMonitoring(args[0], args[1]);
else if (what === 'objects') await checkObjects(args);
else {
  console.error('usage: check-deploy.mjs compose | k8s <overlay> <built.yaml> [out-of-band objects.yaml...] | monitoring <built monitoring.yaml> <built overlay.yaml> | objects <manifest.yaml...>');
  process.exit(2);
}
if (problems.length > 0) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
