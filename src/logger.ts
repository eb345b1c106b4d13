import pino, { type Logger } from 'pino';

/**
 * Paths pino must never print. Keys and tokens appear in config objects, request headers and
 * errors; a log line is an easy place for a containment key to leak.
 */
export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
  'monitorKey',
  '*.monitorKey',
  'containmentKey',
  '*.containmentKey',
  'httpToken',
  '*.httpToken',
  '*.control_token',
  'controlToken',
  '*.controlToken',
  '*.secret',
  '*.webhookSecret',
  '*.routingKey',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
  '*.agentKeys',
  'keys',
  '*.keys',
];

export type { Logger };

/**
 * The process logger. Under stdio, stdout carries JSON-RPC only, so logs go to stderr (fd 2), always.
 */
export function createLogger(
  level = 'info',
  destination: pino.DestinationStream = pino.destination(2),
): Logger {
  return pino(
    {
      level,
      base: { name: 'agent-incident-mcp' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
