/**
 * Configuration: one zod parse over defaults < config file < environment < flags.
 *
 * A bad value never reaches the running server: `loadConfig` throws a `ConfigError` whose message is one
 * line naming the setting and what it accepts, and the CLI turns it into exit code 2.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const AGENT_ID = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

const agentList = z
  .array(z.string().regex(AGENT_ID, 'agent ids match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$'))
  .transform((ids) => [...new Set(ids)]);

const tier = z.enum(['alert_human', 'auto_contain', 'fleet_shutdown']);

/**
 * An API key as the gateway takes it: printable ASCII, no whitespace. A key pasted with a space or a
 * newline around it is refused here, naming the variable, rather than failing deep inside the client.
 */
const apiKey = (what: string) =>
  z
    .string()
    .min(1)
    .regex(
      /^[\x21-\x7e]+$/,
      `${what} has spaces, other whitespace or non-ASCII characters; set the key exactly, without them`,
    );

/** Where the incident store lives when no path is given (a `--sandbox` run then uses a temporary one). */
export const DEFAULT_DATA_DIR = join(homedir(), '.agent-incident-mcp');

export const ConfigSchema = z
  .object({
    greenhelix: z
      .object({
        baseUrl: z.url({ protocol: /^https?$/ }).default('https://api.greenhelix.net'),
        monitorKey: apiKey('GREENHELIX_MONITOR_KEY').optional(),
        containmentKey: apiKey('GREENHELIX_CONTAINMENT_KEY').optional(),
        /** Agents' own keys, only used to prove the containment key is none of them when the key list is unreadable. */
        agentKeys: z.record(z.string(), apiKey('the agent key')).default({}),
        timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
        concurrency: z.number().int().min(1).max(512).default(64),
      })
      .strict()
      .default({
        baseUrl: 'https://api.greenhelix.net',
        agentKeys: {},
        timeoutMs: 10_000,
        concurrency: 64,
      }),
    /**
     * Agent ids this server acts on (and watches). null: it watches every agent the monitor key lists but
     * acts on none, since that list also holds counterparties and shared wallets the gateway cannot tell apart.
     */
    fleet: agentList.nullable().default(null),
    /** Wallets several agents draw on; exhausting one is a cascade signal. */
    sharedWallets: agentList.default([]),
    /**
     * Known-good public keys (64 hex, raw Ed25519) by agent id. They win over a key pinned at first sight:
     * a key swapped before the monitor first looked is then a key change, not the pin.
     */
    /**
     * Identity challenges (verify_agent): each agent's own signer, a URL template with `{agent_id}`. The
     * watcher POSTs `{"message": <nonce>}` and expects `{"signature": <hex Ed25519>}`, then asks the gateway
     * whether that signature matches the registered key. A key swapped by whoever holds the agent's API
     * key fails it, even one swapped before the monitor first looked.
     */
    identityChallenge: z
      .object({
        url: z.string().regex(/^https?:\/\/.*\{agent_id\}/, 'an http(s) URL template containing {agent_id}'),
        token: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    pinnedKeys: z
      .record(
        z.string().regex(AGENT_ID, 'agent ids match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$'),
        z.string().regex(/^[0-9a-fA-F]{64}$/, 'a public key is 64 hex characters (raw Ed25519)'),
      )
      .default({}),
    /** The incident store's directory; absent means DEFAULT_DATA_DIR (or, with the sandbox, a temporary one). */
    dataDir: z.string().min(1).optional(),
    /**
     * A PostgreSQL incident store shared by several replicas (postgres://user:password@host:5432/db). When
     * set it is the store, instead of SQLite in dataDir. Never printed or logged as given: see redactedDatabaseUrl.
     */
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, 'a postgres:// or postgresql:// URL without spaces')
      .optional(),
    /** PostgreSQL store: a statement, or a wait for the store's lock, that takes longer fails (ms). */
    databaseTimeoutMs: z.number().int().min(1_000).max(600_000).default(30_000),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    readOnly: z.boolean().default(false),
    toolsets: z
      .object({
        include: z.array(z.enum(['detect', 'contain', 'recover', 'learn', 'runbooks'])).optional(),
        exclude: z.array(z.enum(['detect', 'contain', 'recover', 'learn', 'runbooks'])).default([]),
      })
      .strict()
      .default({ exclude: [] }),
    transport: z.enum(['stdio', 'http']).default('stdio'),
    http: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65_535).default(3333),
        token: z.string().min(16, 'the HTTP bearer token must be at least 16 characters').optional(),
        /** More tokens, one per supervisor: a session answers only the token that created it. */
        tokens: z
          .array(z.string().min(16, 'each HTTP bearer token must be at least 16 characters'))
          .default([]),
        allowedOrigins: z.array(z.string()).default([]),
        /** Open MCP sessions at most; an initialize beyond it gets 503 until one closes or expires. */
        maxSessions: z.number().int().min(1).max(10_000).default(100),
        /** A session with no request open for this long is closed (and stops receiving alerts). */
        sessionIdleMs: z.number().int().min(1_000).max(86_400_000).default(900_000),
        /** Headers and body must arrive within this (slow clients are cut off with 408). */
        bodyTimeoutMs: z.number().int().min(100).max(300_000).default(10_000),
      })
      .strict()
      .default({
        host: '127.0.0.1',
        port: 3333,
        tokens: [],
        allowedOrigins: [],
        maxSessions: 100,
        sessionIdleMs: 900_000,
        bodyTimeoutMs: 10_000,
      }),
    guards: z
      .object({
        /**
         * Blast radius: distinct agents a call, or all calls together within `windowMs`, may act on without
         * an operator's approval. The smaller of this and `maxFleetShare` of the acting fleet applies (at least 1).
         */
        maxAgentsPerCall: z.number().int().min(1).max(10_000).default(3),
        /** The same limit as a share of the acting fleet (0.1 = 10 %), so a small fleet is not half frozen. */
        maxFleetShare: z.number().gt(0).max(1).default(0.1),
        /** The sliding window the limit also applies to, so splitting a call does not bypass it. */
        windowMs: z.number().int().min(1_000).max(86_400_000).default(600_000),
        /** How long an approval request stays open (and an approval stays usable). */
        confirmationTtlMs: z.number().int().min(10_000).max(3_600_000).default(300_000),
        /** Open approval requests one caller (an MCP session, the watcher) may hold; more are refused. */
        maxPendingPerRequester: z.number().int().min(1).max(100).default(3),
        /**
         * Form elicitation as a convenience: the person at the host confirms in the host's own dialog. Off by
         * default, since a host that auto-accepts elicitations would then confirm by itself.
         */
        formElicitation: z.boolean().default(false),
      })
      .strict()
      .default({
        maxAgentsPerCall: 3,
        maxFleetShare: 0.1,
        windowMs: 600_000,
        confirmationTtlMs: 300_000,
        maxPendingPerRequester: 3,
        formElicitation: false,
      }),
    /**
     * The approval page: served by this process on loopback only, behind the operator secret (never the MCP
     * token). Without a secret the page is off and actions beyond the blast radius cannot be approved.
     */
    approval: z
      .object({
        port: z.number().int().min(0).max(65_535).default(0),
        operatorSecret: z
          .string()
          .min(16, 'the operator secret must be at least 16 characters')
          .max(512)
          .optional(),
      })
      .strict()
      .default({ port: 0 }),
    containment: z
      .object({
        /**
         * Calls in flight at once in containment's fan-outs (voids and subscription cancels together, then
         * escrow cancels in a refund window), and the containment client's connections. 128: an agent's 100
         * pending intents and 20 subscriptions go in one wave, and 300 held escrows in three, so the wallet
         * is open for three round trips of cancels rather than five.
         */
        concurrency: z.number().int().min(1).max(512).default(128),
        /**
         * Refund windows before giving up on escrows that keep appearing or keep failing (each: unfreeze,
         * cancel, refreeze, re-read). Rounds after the first wait with backoff, frozen, between windows.
         */
        maxRefundRounds: z.number().int().min(1).max(20).default(8),
        /** Time budget for unlocking escrows, from the start of containment; rounds stop at it. */
        unlockDeadlineMs: z.number().int().min(1_000).max(600_000).default(30_000),
        /**
         * Lease on an agent's containment, shared by every process on the store; renewed every third of it.
         * A holder that dies without releasing blocks others at most this long (a restart on the same host
         * takes over at once).
         */
        leaseTtlMs: z.number().int().min(1_000).max(600_000).default(15_000),
        slaMs: z.number().int().min(1_000).default(60_000),
        /**
         * How far before detection a settled intent counts as part of the incident: containment lists the
         * agent's intents settled since then as "claw-back possible" (never refunded automatically).
         */
        clawbackWindowMs: z.number().int().min(60_000).max(2_592_000_000).default(3_600_000),
      })
      .strict()
      .default({
        concurrency: 128,
        maxRefundRounds: 8,
        unlockDeadlineMs: 30_000,
        leaseTtlMs: 15_000,
        slaMs: 60_000,
        clawbackWindowMs: 3_600_000,
      }),
    /** Overrides of the detection thresholds (names as in DEFAULT_THRESHOLDS). Checked against them at start. */
    thresholds: z.record(z.string(), z.number().finite()).default({}),
    /** Escalation overrides: "signal:severity" → tier. */
    escalation: z.record(z.string().regex(/^[a-z_]+:(info|warning|critical)$/), tier).default({}),
    watch: z
      .object({
        enabled: z.boolean().default(false),
        /**
         * `enforce`: the watcher acts (runbooks, alerts). `shadow`: it makes the same decisions and only
         * records them (shadow_decisions), so check_readiness can report the false-alarm rate first.
         */
        mode: z.enum(['enforce', 'shadow']).default('enforce'),
        intervalMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
        /** Tightest poll interval of an agent whose escrows are rising. */
        minIntervalMs: z.number().int().min(1_000).max(3_600_000).default(5_000),
        /** A probe (one small list_escrows) between polls; default a third of the interval. */
        probeIntervalMs: z.number().int().min(1_000).max(3_600_000).optional(),
        /** Cadence of the slow reads: balance, usage, reputation, metric deltas. */
        slowReadIntervalMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
        /** Cadence of the identity read: identity_compromise is P0, so at most 2 min. */
        identityIntervalMs: z.number().int().min(1_000).max(120_000).default(120_000),
        /**
         * A watcher replica silent this long is dead and its agents go to the others (replicas.ts). Default:
         * three heartbeats of a tenth of the interval each (0.5–5 s a beat).
         */
        replicaTtlMs: z.number().int().min(750).max(600_000).optional(),
        webhookPort: z.number().int().min(0).max(65_535).optional(),
        webhookHost: z.string().default('127.0.0.1'),
        webhookSecret: z.string().min(8).optional(),
        alertWebhookUrl: z.url({ protocol: /^https?$/ }).optional(),
        alertFormat: z.enum(['slack', 'pagerduty']).default('slack'),
        pagerdutyRoutingKey: z.string().optional(),
      })
      .strict()
      .default({
        enabled: false,
        mode: 'enforce',
        intervalMs: 30_000,
        minIntervalMs: 5_000,
        slowReadIntervalMs: 300_000,
        identityIntervalMs: 120_000,
        webhookHost: '127.0.0.1',
        alertFormat: 'slack',
      }),
    sandbox: z
      .object({
        enabled: z.boolean().default(false),
        agents: z.number().int().min(1).max(10_000).default(40),
        seed: z.number().int().default(1),
        latencyMs: z.number().int().min(0).max(60_000).default(0),
        jitterMs: z.number().int().min(0).max(60_000).default(0),
        errorRate: z.number().min(0).max(1).default(0),
        timeScale: z.number().min(0).max(10_000).default(1),
        /** Scenarios to start at launch, as "scenario:agent_id" (so a host has an incident to find). */
        scenarios: z
          .array(
            z
              .string()
              .regex(
                /^[a-z_]+:[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/,
                'scenarios look like "runaway_spending:agent-07"',
              ),
          )
          .default([]),
      })
      .strict()
      .default({
        enabled: false,
        agents: 40,
        seed: 1,
        latencyMs: 0,
        jitterMs: 0,
        errorRate: 0,
        timeScale: 1,
        scenarios: [],
      }),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** Environment variables and where each lands. The README's table is generated from this list. */
export const ENV_VARS: ReadonlyArray<{
  name: string;
  path: string;
  kind: 'string' | 'number' | 'bool' | 'list' | 'json';
  help: string;
}> = [
  { name: 'GREENHELIX_BASE_URL', path: 'greenhelix.baseUrl', kind: 'string', help: 'Gateway URL' },
  {
    name: 'GREENHELIX_MONITOR_KEY',
    path: 'greenhelix.monitorKey',
    kind: 'string',
    help: 'Admin-scoped key used only to read',
  },
  {
    name: 'GREENHELIX_CONTAINMENT_KEY',
    path: 'greenhelix.containmentKey',
    kind: 'string',
    help: 'Separate admin-scoped key used only to act',
  },
  {
    name: 'GREENHELIX_TIMEOUT_MS',
    path: 'greenhelix.timeoutMs',
    kind: 'number',
    help: 'Deadline per gateway call',
  },
  {
    name: 'GREENHELIX_CONCURRENCY',
    path: 'greenhelix.concurrency',
    kind: 'number',
    help: 'Concurrent calls per client',
  },
  {
    name: 'INCIDENT_FLEET',
    path: 'fleet',
    kind: 'list',
    help: 'Comma-separated agent ids this server may act on (unset: it watches every agent the monitor key lists and acts on none)',
  },
  {
    name: 'INCIDENT_CHALLENGE_URL',
    path: 'identityChallenge.url',
    kind: 'string',
    help: "Each agent's challenge signer, a URL template with {agent_id} (verify_agent)",
  },
  {
    name: 'INCIDENT_CHALLENGE_TOKEN',
    path: 'identityChallenge.token',
    kind: 'string',
    help: 'Bearer token for the challenge signer',
  },
  {
    name: 'INCIDENT_PINNED_KEYS',
    path: 'pinnedKeys',
    kind: 'json',
    help: 'JSON object agent id → known-good public key (64 hex); wins over first-sight pins',
  },
  {
    name: 'INCIDENT_SHARED_WALLETS',
    path: 'sharedWallets',
    kind: 'list',
    help: 'Comma-separated wallets shared by the fleet',
  },
  {
    name: 'INCIDENT_DATA_DIR',
    path: 'dataDir',
    kind: 'string',
    help: 'Where the SQLite incident store lives',
  },
  {
    name: 'INCIDENT_DATABASE_URL',
    path: 'databaseUrl',
    kind: 'string',
    help: 'PostgreSQL URL of an incident store several replicas share (postgres://user:password@host/db); unset: SQLite in the data dir',
  },
  {
    name: 'INCIDENT_DATABASE_TIMEOUT_MS',
    path: 'databaseTimeoutMs',
    kind: 'number',
    help: "PostgreSQL store: a statement or a wait for the store's lock longer than this fails (default 30000)",
  },
  {
    name: 'INCIDENT_HTTP_TOKEN',
    path: 'http.token',
    kind: 'string',
    help: 'Bearer token required in HTTP mode',
  },
  {
    name: 'INCIDENT_HTTP_TOKENS',
    path: 'http.tokens',
    kind: 'list',
    help: 'More bearer tokens, comma-separated (one per supervisor); a session answers only its own token',
  },
  {
    name: 'INCIDENT_HTTP_MAX_SESSIONS',
    path: 'http.maxSessions',
    kind: 'number',
    help: 'Open HTTP sessions at most (default 100)',
  },
  {
    name: 'INCIDENT_HTTP_SESSION_IDLE_MS',
    path: 'http.sessionIdleMs',
    kind: 'number',
    help: 'An HTTP session idle this long is closed (default 15 min)',
  },
  {
    name: 'INCIDENT_HTTP_BODY_TIMEOUT_MS',
    path: 'http.bodyTimeoutMs',
    kind: 'number',
    help: 'Headers and body must arrive within this (default 10 s)',
  },
  {
    name: 'INCIDENT_HTTP_ALLOWED_ORIGINS',
    path: 'http.allowedOrigins',
    kind: 'list',
    help: 'Origins allowed in HTTP mode besides none',
  },
  { name: 'INCIDENT_LOG_LEVEL', path: 'logLevel', kind: 'string', help: 'pino level (logs go to stderr)' },
  {
    name: 'INCIDENT_READ_ONLY',
    path: 'readOnly',
    kind: 'bool',
    help: 'Only detection and post-mortem tools',
  },
  {
    name: 'INCIDENT_MAX_AGENTS_PER_CALL',
    path: 'guards.maxAgentsPerCall',
    kind: 'number',
    help: 'Agents acted on per call, and per window, without operator approval (default 3)',
  },
  {
    name: 'INCIDENT_MAX_FLEET_SHARE',
    path: 'guards.maxFleetShare',
    kind: 'number',
    help: 'The same limit as a share of the fleet (default 0.1); the smaller applies, at least 1 agent',
  },
  {
    name: 'INCIDENT_BLAST_WINDOW_MS',
    path: 'guards.windowMs',
    kind: 'number',
    help: 'Sliding window of the blast-radius limit (default 600000, 10 min)',
  },
  {
    name: 'INCIDENT_FORM_ELICITATION',
    path: 'guards.formElicitation',
    kind: 'bool',
    help: "Also let the person at the host approve in the host's form dialog (default off)",
  },
  {
    name: 'INCIDENT_OPERATOR_SECRET',
    path: 'approval.operatorSecret',
    kind: 'string',
    help: 'Operator secret for the loopback approval page (at least 16 characters; not the HTTP token)',
  },
  {
    name: 'INCIDENT_APPROVAL_PORT',
    path: 'approval.port',
    kind: 'number',
    help: 'Port of the approval page on 127.0.0.1 (default 0: any free port, logged at start)',
  },
  {
    name: 'INCIDENT_CONTAINMENT_CONCURRENCY',
    path: 'containment.concurrency',
    kind: 'number',
    help: 'Calls in flight in containment fan-outs: voids, cancels (default 128)',
  },
  {
    name: 'INCIDENT_THRESHOLDS',
    path: 'thresholds',
    kind: 'json',
    help: 'JSON object of detection threshold overrides',
  },
  {
    name: 'INCIDENT_ESCALATION',
    path: 'escalation',
    kind: 'json',
    help: 'JSON object "signal:severity" → tier',
  },
  {
    name: 'INCIDENT_WATCH_MODE',
    path: 'watch.mode',
    kind: 'string',
    help: 'enforce (act) or shadow (record what would be done; see check_readiness)',
  },
  {
    name: 'INCIDENT_WATCH_INTERVAL_MS',
    path: 'watch.intervalMs',
    kind: 'number',
    help: 'Watcher poll interval',
  },
  {
    name: 'INCIDENT_REPLICA_TTL_MS',
    path: 'watch.replicaTtlMs',
    kind: 'number',
    help: 'Replicas on one store: one silent this long is dead and its agents are taken over (default 3 × interval/10, 1.5–15 s)',
  },
  {
    name: 'INCIDENT_WATCH_MIN_INTERVAL_MS',
    path: 'watch.minIntervalMs',
    kind: 'number',
    help: 'Tightest poll interval, for an agent whose escrows are rising',
  },
  {
    name: 'INCIDENT_WATCH_PROBE_INTERVAL_MS',
    path: 'watch.probeIntervalMs',
    kind: 'number',
    help: 'Probe for new escrows between polls (default: a third of the interval)',
  },
  {
    name: 'INCIDENT_WATCH_SLOW_READ_INTERVAL_MS',
    path: 'watch.slowReadIntervalMs',
    kind: 'number',
    help: 'Cadence of balance, usage, reputation and metric reads',
  },
  {
    name: 'INCIDENT_WEBHOOK_PORT',
    path: 'watch.webhookPort',
    kind: 'number',
    help: 'Port of the webhook receiver (watcher)',
  },
  {
    name: 'INCIDENT_WEBHOOK_SECRET',
    path: 'watch.webhookSecret',
    kind: 'string',
    help: 'Secret that signs incoming webhooks',
  },
  {
    name: 'INCIDENT_ALERT_WEBHOOK_URL',
    path: 'watch.alertWebhookUrl',
    kind: 'string',
    help: 'Outbound alert webhook (Slack or PagerDuty)',
  },
  { name: 'INCIDENT_ALERT_FORMAT', path: 'watch.alertFormat', kind: 'string', help: 'slack or pagerduty' },
  {
    name: 'INCIDENT_PAGERDUTY_ROUTING_KEY',
    path: 'watch.pagerdutyRoutingKey',
    kind: 'string',
    help: 'PagerDuty Events v2 routing key',
  },
];

type Json = Record<string, unknown>;

/** A database URL as it may be printed or logged: its password (and any password parameter) replaced by ***. */
export function redactedDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const key of [...u.searchParams.keys()]) if (/pass/i.test(key)) u.searchParams.set(key, '***');
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

function setPath(target: Json, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Json;
  }
  node[parts[parts.length - 1] as string] = value;
}

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    if (
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
    ) {
      out[key] = deepMerge(prev as Json, value as Json);
    } else if (value !== undefined) {
      out[key] = value;
    }
  }
  return out;
}

function parseEnvValue(name: string, kind: (typeof ENV_VARS)[number]['kind'], raw: string): unknown {
  switch (kind) {
    case 'string':
      return raw;
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n))
        throw new ConfigError(`${name}: expected a number, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off|)$/i.test(raw)) return false;
      throw new ConfigError(`${name}: expected true or false, got ${JSON.stringify(raw)}`);
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'json':
      try {
        return JSON.parse(raw);
      } catch {
        throw new ConfigError(`${name}: expected a JSON object, got ${JSON.stringify(raw.slice(0, 60))}`);
      }
  }
}

/** Reads the settings the environment gives, as a partial config. */
export function configFromEnv(env: NodeJS.ProcessEnv): Json {
  const out: Json = {};
  for (const v of ENV_VARS) {
    const raw = env[v.name];
    if (raw === undefined || raw === '') continue;
    setPath(out, v.path, parseEnvValue(v.name, v.kind, raw));
  }
  return out;
}

function configFromFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `config file ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Json;
  } catch {
    throw new ConfigError(`config file ${path}: expected a JSON object`);
  }
}

/** One line per problem: `greenhelix.concurrency: Too big: expected number to be <=512`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length ? issue.path.join('.') : '(config)';
      const hint =
        issue.code === 'unrecognized_keys'
          ? ` (${issue.keys.join(', ')}); see the README for accepted settings`
          : '';
      return `${where}: ${issue.message}${hint}`;
    })
    .join('; ');
}

/**
 * Builds the configuration from defaults < file < env < flags. `flags` is already shaped like the config.
 * @throws ConfigError with a one-line message naming the bad setting.
 */
export function loadConfig(
  opts: { env?: NodeJS.ProcessEnv; file?: string | undefined; flags?: Json } = {},
): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.INCIDENT_CONFIG;
  let merged: Json = {};
  if (file) merged = deepMerge(merged, configFromFile(file));
  merged = deepMerge(merged, configFromEnv(env));
  merged = deepMerge(merged, opts.flags ?? {});
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error));
  checkOperatorSecret(parsed.data);
  return parsed.data;
}

/**
 * The operator secret approves what the model may not do alone, so it must be something no MCP client
 * holds: never the HTTP bearer token, never a gateway key.
 */
function checkOperatorSecret(config: Config): void {
  const secret = config.approval.operatorSecret;
  if (secret === undefined) return;
  const clash = [
    ['INCIDENT_HTTP_TOKEN (http.token)', config.http.token],
    ['GREENHELIX_MONITOR_KEY', config.greenhelix.monitorKey],
    ['GREENHELIX_CONTAINMENT_KEY', config.greenhelix.containmentKey],
  ].find(([, v]) => v !== undefined && v === secret);
  if (clash)
    throw new ConfigError(
      `approval.operatorSecret (INCIDENT_OPERATOR_SECRET) equals ${clash[0]}; choose a separate secret that no MCP client holds`,
    );
}

/** True when the server can talk to a gateway at all: a monitor key, or the embedded sandbox. */
export function hasGatewayAccess(config: Config): boolean {
  return config.sandbox.enabled || Boolean(config.greenhelix.monitorKey);
}

export const MISSING_CREDENTIALS_MESSAGE =
  'agent-incident-mcp: no gateway credentials. Set GREENHELIX_MONITOR_KEY (reads) and GREENHELIX_CONTAINMENT_KEY (acts), or try it with no account: agent-incident-mcp --sandbox';
