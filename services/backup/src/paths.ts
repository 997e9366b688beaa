import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The repository root (this file is services/backup/{src,dist}/paths.*). */
export const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');

export function parleyVersion(): string {
  return (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}
