export { Api, HttpApi } from './http.js';
export { ChatCursors, type Verdict } from './cursors.js';
export { RealtimeClient, newClientMsgId, type ConnectionStatus, type RealtimeHandlers, type SendFrame, type SocketFactory, type SocketLike } from './socket.js';
export { memoryTokens, storageTokens, TOKENS_KEY, type TokenStore } from './tokens.js';
export * from './types.js';
