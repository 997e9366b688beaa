export * from './env.js';
export * from './nats.js';
export * from './noted.js';
