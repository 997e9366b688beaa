export * from './errors.js';
export * from './router.js';
export * from './ops-server.js';
export * from './pagination.js';
