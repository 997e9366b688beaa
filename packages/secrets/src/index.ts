export * from './nats-config.js';
export * from './signing-key.js';
export * from './files.js';
