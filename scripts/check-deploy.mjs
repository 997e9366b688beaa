// Offline checks of the deployment files, run by scripts/check-deploy.sh:
//   node scripts/check-deploy.mjs compose
//   node scripts/check-deploy.mjs k8s <overlay> <built.yaml> [external Secret names...]
// compose: both compose files parse and hang together (images, volumes, mounted files, ports).
// k8s: every object of a built overlay is valid against the Kubernetes schema (kubernetes-models),
// every reference (ConfigMap, Secret, PVC, HPA target) resolves, and every pod is restricted.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const problems = [];
const fail = (msg) => problems.push(msg);
// The processes that make spans start with tracing's loader hook (docs/operations.md, Tracing).
const TRACED = ['gateway', 'users', 'messages', 'retention'];
const startsTraced = (command) => Array.isArray(command) && command.join(' ').startsWith('node --import @parley/telemetry/register ');

function checkCompose() {
  const load = (f) => parse(readFileSync(path.join(root, f), 'utf8'), { merge: true });
  const base = load('docker-compose.yml');
  const mon = load('docker-compose.monitoring.yml');
  const volumes = new Set([...Object.keys(base.volumes ?? {}), ...Object.keys(mon.volumes ?? {})]);
  const services = { ...base.services };
  for (const [name, s] of Object.entries(mon.services)) {
    if (!services[name] && !s.image) fail(`monitoring: ${name} overrides no service of docker-compose.yml and has no image`);
    services[name] = { ...services[name], ...s, environment: { ...services[name]?.environment, ...s.environment } };
  }
  for (const [name, s] of Object.entries(services)) {
    if (!s.image && !s.build) fail(`compose: ${name} has neither image nor build`);
    if (s.image && !s.build && !/:[\w.-]+$/.test(s.image)) fail(`compose: ${name} image ${s.image} is not pinned to a tag`);
    for (const v of s.volumes ?? []) {
      const [src] = String(v).split(':');
      if (src.startsWith('.')) {
        if (!existsSync(path.join(root, src))) fail(`compose: ${name} mounts missing ${src}`);
      } else if (!volumes.has(src)) fail(`compose: ${name} uses undeclared volume ${src}`);
    }
    for (const dep of Object.keys(Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, 1])) : (s.depends_on ?? {}))) {
      if (!services[dep]) fail(`compose: ${name} depends on unknown ${dep}`);
    }
  }
  const published = (name) => (services[name].ports ?? []).map((p) => String(p).split(':')[0]);
  if (published('prometheus').join() !== '9090') fail('compose: Prometheus must publish 9090');
  if (published('grafana').join() !== '3001') fail('compose: Grafana must publish 3001');
  for (const name of ['gateway', 'users', 'messages']) {
    const port = String(services[name].environment.METRICS_PORT);
    if (published(name).includes(port)) fail(`compose: ${name} publishes its metrics port ${port}`);
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

/** kubernetes-models module path for an apiVersion and kind: core `v1` or `<group>/<version>`. */
async function model(apiVersion, kind) {
  try {
    const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
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

async function checkK8s(overlay, file, external) {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS()).filter(Boolean);
  if (docs.length === 0) fail(`${overlay}: no objects`);
  const have = new Set(docs.map((o) => `${o.kind}/${o.metadata.name}`));
  for (const name of external) have.add(`Secret/${name}`);
  for (const o of docs) {
    const where = `${overlay}: ${o.kind}/${o.metadata?.name}`;
    const Model = await model(o.apiVersion, o.kind);
    if (!Model) {
      fail(`${where}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      fail(`${where}: ${err.message}`);
    }
    for (const spec of podSpecs(o)) {
      const psc = spec.securityContext ?? {};
      if (psc.runAsNonRoot !== true) fail(`${where}: pod must set runAsNonRoot`);
      if (psc.seccompProfile?.type !== 'RuntimeDefault') fail(`${where}: pod must use seccomp RuntimeDefault`);
      for (const v of spec.volumes ?? []) {
        if (v.persistentVolumeClaim && !have.has(`PersistentVolumeClaim/${v.persistentVolumeClaim.claimName}`)) fail(`${where}: PVC ${v.persistentVolumeClaim.claimName} missing`);
      }
      for (const c of spec.containers) {
        const sc = c.securityContext ?? {};
        if (sc.allowPrivilegeEscalation !== false) fail(`${where}/${c.name}: allowPrivilegeEscalation must be false`);
        if (!(sc.capabilities?.drop ?? []).includes('ALL')) fail(`${where}/${c.name}: must drop ALL capabilities`);
        if (!c.resources?.requests || !c.resources?.limits?.memory) fail(`${where}/${c.name}: needs requests and a memory limit`);
        if (o.kind === 'Deployment' && !c.readinessProbe) fail(`${where}/${c.name}: needs a readiness probe`);
        for (const e of c.envFrom ?? []) {
          if (e.configMapRef && !have.has(`ConfigMap/${e.configMapRef.name}`)) fail(`${where}: ConfigMap ${e.configMapRef.name} missing`);
          if (e.secretRef && !have.has(`Secret/${e.secretRef.name}`)) fail(`${where}: Secret ${e.secretRef.name} missing`);
        }
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (ref && !have.has(`Secret/${ref.name}`)) fail(`${where}: Secret ${ref.name} missing`);
        }
        if (TRACED.includes(c.name) && !startsTraced(c.command)) fail(`${where}/${c.name}: not started with --import @parley/telemetry/register`);
        if (c.image === 'parley') fail(`${where}/${c.name}: the overlay must set the image tag`);
      }
    }
    if (o.kind === 'HorizontalPodAutoscaler' && !have.has(`${o.spec.scaleTargetRef.kind}/${o.spec.scaleTargetRef.name}`)) fail(`${where}: target missing`);
    if (o.kind === 'CronJob' && o.spec.concurrencyPolicy !== 'Forbid') fail(`${where}: concurrencyPolicy must be Forbid`);
  }
  for (const name of ['gateway', 'users', 'messages']) {
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget']) if (!have.has(`${kind}/${name}`)) fail(`${overlay}: ${kind}/${name} missing`);
  }
  for (const want of ['HorizontalPodAutoscaler/gateway', 'HorizontalPodAutoscaler/messages', 'CronJob/retention', 'CronJob/backup', 'NetworkPolicy/default-deny']) {
    if (!have.has(want)) fail(`${overlay}: ${want} missing`);
  }
  console.log(`k8s ${overlay}: ${docs.length} objects valid`);
}

const [what, ...args] = process.argv.slice(2);
if (what === 'compose') checkCompose();
else if (what === 'k8s') await checkK8s(args[0], args[1], args.slice(2));
else {
  console.error('usage: check-deploy.mjs compose | k8s <overlay> <built.yaml> [external secrets...]');
  process.exit(2);
}
if (problems.length > 0) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
