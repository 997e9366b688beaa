export * from './projector.js';
export * from './store.js';
export * from './leadership.js';
export * from './checkpoint.js';
export type { Position, PositionedEvent } from '@parley/bus';
