export * from './env.js';
export * from './nats.js';
export * from './projection-spec.js';
export * from './noted.js';
export * from './ports.js';
