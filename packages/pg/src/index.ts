export * from './pool.js';
export * from './database.js';
export * from './migrate.js';
export * from './batches.js';
