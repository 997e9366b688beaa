import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const HTTP_LABELS = ['method', 'route', 'status_code'] as const;
const SIZE_BUCKETS = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];

/**
 * One registry per service holding the metrics the operations guide names (docs/operations.md), exactly
 * so, plus Parley's own. Every service registers all of them so that dashboards never hit a
 * missing series; a metric a service does not use simply stays at zero.
 */
export function createMetrics(service: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  return {
    registry,
    httpRequestsTotal: new Counter({ name: 'http_requests_total', help: 'HTTP requests served', labelNames: HTTP_LABELS, registers: r }),
    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: HTTP_LABELS,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    httpRequestSize: new Histogram({ name: 'http_request_size_bytes', help: 'HTTP request body size', labelNames: HTTP_LABELS, buckets: SIZE_BUCKETS, registers: r }),
    httpResponseSize: new Histogram({ name: 'http_response_size_bytes', help: 'HTTP response body size', labelNames: HTTP_LABELS, buckets: SIZE_BUCKETS, registers: r }),
    websocketConnections: new Gauge({ name: 'websocket_connections_total', help: 'Open WebSocket connections (a gauge, named as the operations guide names it)', registers: r }),
    websocketMessages: new Counter({ name: 'websocket_messages_total', help: 'WebSocket frames by direction and op', labelNames: ['direction', 'op'] as const, registers: r }),
    databaseQueries: new Counter({ name: 'database_queries_total', help: 'SQL statements run, by first keyword and schema-qualified table', labelNames: ['operation', 'table', 'outcome'] as const, registers: r }),
    databaseQueryDuration: new Histogram({
      name: 'database_query_duration_seconds',
      help: 'SQL statement latency',
      labelNames: ['operation', 'table'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: r,
    }),
    messagesTotal: new Counter({ name: 'messages_total', help: 'Chat messages projected', registers: r }),
    chatSeqCollisions: new Counter({
      name: 'chat_seq_collisions_total',
      help: 'Message events the store accepted with a chat seq another event already had; not projected at that seq, queued for repair (a NATS defect; any increase is an incident)',
      registers: r,
    }),
    chatSeqRepairs: new Counter({
      name: 'chat_seq_repairs_total',
      help: 'Messages that lost their chat seq to another event, appended again under a new seq by the seq-repair reactor (outcome: appended; or skipped: already repaired, erased, expired, gone from the stream)',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    usersTotal: new Gauge({ name: 'users_total', help: 'Registered users', registers: r }),
    activeUsers: new Gauge({ name: 'active_users', help: 'Distinct users with an open connection', registers: r }),
    cacheRequests: new Counter({ name: 'cache_requests_total', help: 'Redis cache operations by outcome (hit, miss, error, ok)', labelNames: ['operation', 'outcome'] as const, registers: r }),
    thumbnails: new Counter({
      name: 'gateway_thumbnails_total',
      help: 'Image thumbnail requests past the access check, by outcome (made, cached, refused: too many pixels or undecodable, busy: queue full)',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    socketSetupsWaiting: new Gauge({
      name: 'gateway_socket_setups_waiting',
      help: 'Sockets waiting behind WS_SETUP_CONCURRENCY others for their set-up (memberships, presence snapshot) or, once closed, their presence tear-down',
      registers: r,
    }),
    followedChats: new Gauge({ name: 'gateway_followed_chats', help: 'Chats this gateway receives live events for (those with a local member)', registers: r }),
    projectorEvents: new Counter({ name: 'projector_events_total', help: 'Events handled by projectors', labelNames: ['projector', 'outcome'] as const, registers: r }),
    projectorPending: new Gauge({ name: 'projector_pending_events', help: 'Events stored in the stream that a projector has not acknowledged yet (its lag), sampled every 5 s', labelNames: ['projector'] as const, registers: r }),
    projectorPoison: new Counter({ name: 'projector_poison_messages_total', help: 'Events terminated as unprocessable (never silently dropped: each is logged with its id)', labelNames: ['projector'] as const, registers: r }),
    busPublishes: new Counter({ name: 'bus_publishes_total', help: 'JetStream publishes', labelNames: ['stream', 'outcome'] as const, registers: r }),
    rpcRequests: new Counter({ name: 'rpc_requests_total', help: 'NATS request/reply calls served', labelNames: ['subject', 'outcome'] as const, registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
