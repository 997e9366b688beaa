export * from './users.js';
export * from './chats.js';
export * from './security.js';
