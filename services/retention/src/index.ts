export { runCleanup, type CliResult } from './cli.js';
export { runRetentionPass, type PassReport, type PassOptions } from './pass.js';
export { cutoffsAt, expiryChunks } from './policy.js';
export { importLedger } from './ledger.js';
