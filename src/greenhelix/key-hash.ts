import { createHash } from 'node:crypto';

/** First 8 hex characters of SHA3-256(key): how the gateway stores and lists `key_hash_prefix`. */
export function keyHashPrefix(key: string): string {
  return createHash('sha3-256').update(key, 'utf8').digest('hex').slice(0, 8);
}
