import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMetrics } from '@parley/telemetry';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { backupMetrics, failureMetrics, offsiteMetrics } from '../../services/backup/src/metrics.js';
import { createJobMetrics } from '../../services/retention/src/job-metrics.js';

// Every metric a dashboard panel or an alert queries must be one the services export, or the panel
// stays empty and the alert never fires. "Export" means: registered by createMetrics (the registry
// every service serves on /metrics, prom-client defaults included), a series Prometheus makes
// itself, or one of the metrics the retention and backup jobs push.

const here = path.dirname(fileURLToPath(import.meta.url));

/** Metrics of the one-shot jobs (services/retention, services/backup), pushed to the Pushgateway: their own registries. */
async function jobMetricNames(): Promise<string[]> {
  const retention = createJobMetrics().registry;
  const backup = backupMetrics({ finishedAt: new Date(), bytes: 0, durationSeconds: 0 });
  const offsite = offsiteMetrics({ finishedAt: new Date(), bytes: 0 });
  const failure = failureMetrics(new Date());
  return [...(await retention.getMetricsAsJSON()), ...(await backup.getMetricsAsJSON()), ...(await offsite.getMetricsAsJSON()), ...(await failure.getMetricsAsJSON())].map((m) => m.name);
}
/** Series Prometheus records for every target. */
const PROMETHEUS_SERIES = ['up'];

async function exportedNames(): Promise<Set<string>> {
  const { registry } = createMetrics('metrics-test');
  const names = new Set<string>([...(await jobMetricNames()), ...PROMETHEUS_SERIES]);
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression reads (strings, label matchers, groupings and ranges removed). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const before = bare[m.index - 1];
    // skip the digits-and-unit tail of numbers like 1e3 and label_values' `$service`-style variables
    if (before !== undefined && /[0-9.$]/.test(before)) continue;
    if (KEYWORDS.has(word.toLowerCase())) continue;
    // an identifier followed by `(` is a function
    if (/^\s*\(/.test(bare.slice(m.index + word.length))) continue;
    names.push(word);
  }
  return names;
}

function alertExprs(): { where: string; expr: string }[] {
  const dir = path.join(here, 'rules');
  const out: { where: string; expr: string }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yml'))) {
    const doc = parse(readFileSync(path.join(dir, file), 'utf8'));
    for (const group of doc.groups) for (const rule of group.rules) out.push({ where: `${file} ${rule.alert ?? rule.record}`, expr: rule.expr });
  }
  return out;
}

function dashboardExprs(): { where: string; expr: string }[] {
  const dir = path.join(here, 'grafana', 'dashboards');
  const out: { where: string; expr: string }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const d = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    for (const p of d.panels) for (const t of p.targets) out.push({ where: `${file} "${p.title}"`, expr: t.expr });
    for (const v of d.templating.list) {
      const m = /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(v.query ?? '');
      if (m) out.push({ where: `${file} variable ${v.name}`, expr: m[1]! });
    }
  }
  return out;
}

describe('metric names in dashboards and alerts', () => {
  it('parses the names out of PromQL', () => {
    expect(metricNames('sum by (service) (rate(http_requests_total{status_code=~"5.."}[5m])) / sum by (service) (rate(http_requests_total[5m])) > 0.05')).toEqual([
      'http_requests_total',
      'http_requests_total',
    ]);
    expect(metricNames('label_replace(up{job=~"a|b"} == 0, "service", "$1", "job", "(.*)")')).toEqual(['up']);
    expect(metricNames('time() - max(backup_last_success_timestamp_seconds) > 26 * 3600')).toEqual(['backup_last_success_timestamp_seconds']);
    expect(metricNames('histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="b"}[5m])))')).toEqual(['x_bucket']);
  });

  it('every alert and every dashboard panel reads only exported metrics', async () => {
    const exported = await exportedNames();
    const uses = [...alertExprs(), ...dashboardExprs()];
    // the rule files and six dashboards are all read (a broken path must not pass vacuously)
    expect(uses.length).toBeGreaterThan(40);
    const unknown: string[] = [];
    for (const { where, expr } of uses) {
      const names = metricNames(expr);
      expect(names.length, `${where}: no metric in ${expr}`).toBeGreaterThan(0);
      for (const n of names) if (!exported.has(n)) unknown.push(`${where}: ${n}`);
    }
    expect(unknown).toEqual([]);
  });
});
