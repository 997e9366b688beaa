export * from './connect.js';
export * from './streams.js';
export * from './publish.js';
export * from './sequencer.js';
export * from './rpc.js';
export * from './projector.js';
export * from './trace.js';
export * from './compact.js';
