// Writes the Grafana dashboards in deploy/monitoring/grafana/dashboards/ from the definitions below,
// so that the panels stay uniform and the JSON stays reviewable:
//   node scripts/grafana-dashboards.mjs           # write the files
//   node scripts/grafana-dashboards.mjs --check   # exit 1 if a committed file differs (CI)
// Every query uses metrics that packages/telemetry/src/metrics.ts registers (or the job metrics);
// deploy/monitoring/metrics.test.ts checks that.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'deploy', 'monitoring', 'grafana', 'dashboards');
const ds = { type: 'prometheus', uid: 'prometheus' };
const svc = 'service=~"$service"';

/** A time-series panel; `unit` is Grafana's unit id. */
function ts(title, unit, targets, description) {
  return { type: 'timeseries', title, description, unit, targets };
}
function stat(title, unit, targets, description) {
  return { type: 'stat', title, description, unit, targets };
}
const q = (expr, legend) => ({ expr, legend });

const serviceVar = {
  name: 'service',
  label: 'service',
  type: 'query',
  datasource: ds,
  query: 'label_values(process_start_time_seconds, service)',
  refresh: 2,
  includeAll: true,
  multi: true,
  current: { text: 'All', value: '$__all' },
};

const dashboards = [
  {
    uid: 'parley-services',
    title: 'Parley / Services (RED)',
    vars: [serviceVar],
    panels: [
      stat('Up', 'none', [q('up{job=~"gateway|users|messages"}', '{{job}}')], 'Prometheus reached the /metrics endpoint (1) or not (0).'),
      ts('HTTP requests by route', 'reqps', [q(`sum by (route) (rate(http_requests_total{${svc}}[5m]))`, '{{route}}')], 'Rate: the gateway serves the HTTP API.'),
      ts('HTTP 5xx share', 'percentunit', [
        q(`sum by (service) (rate(http_requests_total{${svc},status_code=~"5.."}[5m])) / sum by (service) (rate(http_requests_total{${svc}}[5m]))`, '{{service}}'),
      ], 'Errors: alert HighErrorRate at 5%.'),
      ts('HTTP latency p50 / p95 / p99', 's', [
        q(`histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{${svc}}[5m])))`, 'p50'),
        q(`histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{${svc}}[5m])))`, 'p95'),
        q(`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{${svc}}[5m])))`, 'p99'),
      ], 'Duration: alert HighLatencyP95 at 500 ms.'),
      ts('HTTP p95 by route', 's', [q(`histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{${svc}}[5m])))`, '{{route}}')]),
      ts('HTTP body sizes p95', 'bytes', [
        q(`histogram_quantile(0.95, sum by (le) (rate(http_request_size_bytes_bucket{${svc}}[5m])))`, 'request'),
        q(`histogram_quantile(0.95, sum by (le) (rate(http_response_size_bytes_bucket{${svc}}[5m])))`, 'response'),
      ]),
      ts('RPC requests served (users, messages)', 'reqps', [q(`sum by (service, outcome) (rate(rpc_requests_total{${svc}}[5m]))`, '{{service}} {{outcome}}')], 'NATS request/reply calls the gateway makes to the services.'),
      ts('RPC error share', 'percentunit', [
        q(`sum by (service) (rate(rpc_requests_total{${svc},outcome="error"}[5m])) / sum by (service) (rate(rpc_requests_total{${svc}}[5m]))`, '{{service}}'),
      ], 'Alert HighRpcErrorRate at 5%.'),
      ts('Resident memory', 'bytes', [q(`process_resident_memory_bytes{${svc}}`, '{{service}} {{instance}}')]),
      ts('CPU', 'percentunit', [q(`rate(process_cpu_seconds_total{${svc}}[5m])`, '{{service}} {{instance}}')]),
      ts('Event-loop lag p99', 's', [q(`nodejs_eventloop_lag_p99_seconds{${svc}}`, '{{service}} {{instance}}')]),
      ts('Heap used', 'bytes', [q(`sum by (service, instance) (nodejs_heap_size_used_bytes{${svc}})`, '{{service}} {{instance}}')]),
    ],
  },
  {
    uid: 'parley-websockets',
    title: 'Parley / WebSockets',
    vars: [],
    panels: [
      stat('Open connections', 'none', [q('sum(websocket_connections_total)', 'connections')]),
      stat('Active users', 'none', [q('max(active_users)', 'users')], 'Distinct users connected to any gateway (every gateway reports the same figure).'),
      ts('Open connections per gateway', 'none', [q('websocket_connections_total{service="gateway"}', '{{instance}}')]),
      ts('Frames in by op', 'ops', [q('sum by (op) (rate(websocket_messages_total{direction="in"}[5m]))', '{{op}}')]),
      ts('Frames out by op', 'ops', [q('sum by (op) (rate(websocket_messages_total{direction="out"}[5m]))', '{{op}}')]),
      ts('Refused frames', 'ops', [q('sum by (op) (rate(websocket_messages_total{op=~"rate_limited|oversize|unknown|error"}[5m]))', '{{op}}')], 'Rate-limited, oversize, unknown and failed frames.'),
      ts('Chats followed per gateway', 'none', [q('gateway_followed_chats', '{{instance}}')], 'Chats this gateway receives live events for.'),
    ],
  },
  {
    uid: 'parley-jetstream',
    title: 'Parley / JetStream and projectors',
    vars: [],
    panels: [
      ts('Projector lag (events not yet acknowledged)', 'short', [q('max by (projector) (projector_pending_events)', '{{projector}}')], 'JetStream num_pending + num_ack_pending per projector (alert ProjectorLagging above 1000 for 5 min).'),
      ts('Events applied per projector', 'ops', [q('sum by (projector) (rate(projector_events_total{outcome="applied"}[5m]))', '{{projector}}')]),
      ts('Projector retries', 'ops', [q('sum by (projector) (rate(projector_events_total{outcome="retry"}[5m]))', '{{projector}}')], 'Retries mean the projection lags its stream (alerts ProjectorRetrying, ProjectorStalled).'),
      ts('Events skipped (already applied)', 'ops', [q('sum by (projector) (rate(projector_events_total{outcome="skipped"}[5m]))', '{{projector}}')], 'Redeliveries recognised by their stream sequence.'),
      stat('Poison events (24 h)', 'none', [q('sum by (projector) (increase(projector_poison_messages_total[24h]))', '{{projector}}')], 'Events terminated as unprocessable; each is logged with its event id.'),
      ts('Publishes by stream and outcome', 'ops', [q('sum by (stream, outcome) (rate(bus_publishes_total[5m]))', '{{stream}} {{outcome}}')]),
      ts('Messages projected', 'ops', [q('sum(rate(messages_total[5m]))', 'messages/s')]),
      stat('Registered users', 'none', [q('max(users_total)', 'users')]),
    ],
  },
  {
    uid: 'parley-database',
    title: 'Parley / Database',
    vars: [serviceVar],
    panels: [
      ts('Queries by operation', 'ops', [q(`sum by (service, operation) (rate(database_queries_total{${svc}}[5m]))`, '{{service}} {{operation}}')]),
      ts('Failed queries', 'ops', [q(`sum by (service, operation) (rate(database_queries_total{${svc},outcome="error"}[5m]))`, '{{service}} {{operation}}')]),
      ts('Query latency p95 by operation', 's', [q(`histogram_quantile(0.95, sum by (le, service, operation) (rate(database_query_duration_seconds_bucket{${svc}}[5m])))`, '{{service}} {{operation}}')]),
      ts('Query latency p50', 's', [q(`histogram_quantile(0.5, sum by (le, service) (rate(database_query_duration_seconds_bucket{${svc}}[5m])))`, '{{service}}')]),
      ts('Time in Postgres', 's', [q(`sum by (service) (rate(database_query_duration_seconds_sum{${svc}}[5m]))`, '{{service}}')], 'Seconds spent in queries per second of wall time.'),
    ],
  },
  {
    uid: 'parley-cache',
    title: 'Parley / Cache (Redis)',
    vars: [serviceVar],
    panels: [
      ts('Hit ratio', 'percentunit', [
        q(`sum by (service) (rate(cache_requests_total{${svc},operation="get",outcome="hit"}[5m])) / sum by (service) (rate(cache_requests_total{${svc},operation="get"}[5m]))`, '{{service}}'),
      ]),
      ts('Cache calls by operation and outcome', 'ops', [q(`sum by (service, operation, outcome) (rate(cache_requests_total{${svc}}[5m]))`, '{{service}} {{operation}} {{outcome}}')]),
      ts('Failed cache calls (Postgres fallback)', 'ops', [q(`sum by (service) (rate(cache_requests_total{${svc},outcome="error"}[5m]))`, '{{service}}')], 'Above zero: Redis is failing and reads go to Postgres (alert RedisFallbackActive).'),
    ],
  },
  {
    uid: 'parley-jobs',
    title: 'Parley / Retention and backup',
    vars: [],
    panels: [
      stat('Since last retention pass', 's', [q('time() - max(retention_last_success_timestamp_seconds)', 'retention')], 'Alert RetentionNotRun after 26 h.'),
      stat('Since last backup', 's', [q('time() - max(backup_last_success_timestamp_seconds)', 'backup')], 'Alert BackupNotRun after 26 h.'),
      stat('Last backup size', 'bytes', [q('max(backup_size_bytes)', 'size')]),
      ts('Backup size', 'bytes', [q('max(backup_size_bytes)', 'size')]),
      ts('Job duration', 's', [q('max(retention_duration_seconds)', 'retention'), q('max(backup_duration_seconds)', 'backup')], 'Duration of the latest run of each job.'),
      // Each pass is a new process that pushes its own count (pushAdd replaces the previous pass's),
      // so the pushed counter is "deleted by the last pass", not a running total.
      ts('Deleted by the last retention pass', 'none', [q('sum by (type) (retention_deleted_total)', '{{type}}')]),
    ],
  },
];

function render(d) {
  let id = 1;
  const width = 12;
  const height = 8;
  const panels = d.panels.map((p, i) => ({
    id: id++,
    type: p.type,
    title: p.title,
    ...(p.description ? { description: p.description } : {}),
    datasource: ds,
    gridPos: { h: p.type === 'stat' ? 5 : height, w: width, x: (i % 2) * width, y: Math.floor(i / 2) * height },
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
    options: p.type === 'stat' ? { reduceOptions: { calcs: ['lastNotNull'] } } : { legend: { displayMode: 'list', placement: 'bottom' } },
    targets: p.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), datasource: ds, expr: t.expr, legendFormat: t.legend })),
  }));
  return {
    uid: d.uid,
    title: d.title,
    tags: ['parley'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: false,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    templating: { list: d.vars },
    panels,
  };
}

const check = process.argv.includes('--check');
let stale = 0;
for (const d of dashboards) {
  const file = path.join(out, `${d.uid.replace(/^parley-/, '')}.json`);
  const text = `${JSON.stringify(render(d), null, 2)}\n`;
  if (!check) {
    writeFileSync(file, text);
    continue;
  }
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // missing: reported below
  }
  if (current !== text) {
    console.error(`${path.relative(process.cwd(), file)} differs from scripts/grafana-dashboards.mjs; run it and commit the result`);
    stale++;
  }
}
if (stale > 0) process.exit(1);
