export * from './users.js';
export * from './chats.js';
