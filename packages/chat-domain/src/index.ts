export * from './state.js';
export * from './decide.js';
export * from './specification.js';
export * from './write.js';
export * from './snapshot.js';
