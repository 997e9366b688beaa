export * from './state.js';
export * from './decide.js';
export * from './specification.js';
