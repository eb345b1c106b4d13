/**
 * Client and sandbox against each other and against catalog.json, over real HTTP on port 0:
 * (a) every request the client builds validates against the tool's input_schema, with CONTRACT.md's
 *     route-level corrections; (b) every sandbox response validates against the tool's output_schema,
 *     with CONTRACT.md's serialization corrections, and the client's zod schemas parse it.
 * A recording proxy sits between them; nothing of ours is mocked. The catalog is a copy of
 * shared/greenhelix/catalog.json kept in test/fixtures so a clone can run the tests on its own.
 */
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GreenHelixClient, ROUTES, type ToolName } from '../../src/greenhelix/index.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  [k: string]: unknown;
};
const catalog = JSON.parse(
  readFileSync(new URL('../fixtures/greenhelix-catalog.json', import.meta.url), 'utf8'),
) as { name: string; input_schema: Schema; output_schema: Schema }[];
const byName = new Map(catalog.map((t) => [t.name, t]));
const ajv = new Ajv({ strict: false, allErrors: true });

/**
 * Route-level corrections to the catalog's input schemas (CONTRACT.md §7, §11). Each is a fact of the
 * real gateway's REST models, not a loosening for our convenience.
 */
const INPUT_CORRECTIONS: Record<string, (s: Schema) => Schema> = {
  // §7: PUT replaces both caps; null clears one, so "no cap" is sent as null.
  set_budget_cap: (s) =>
    withProps(s, { daily_cap: { type: ['number', 'null'] }, monthly_cap: { type: ['number', 'null'] } }),
  // §5: the REST body rejects idempotency_key; it travels in the Idempotency-Key header.
  create_escrow: (s) => withProps(s, { amount: { type: ['number', 'string'] } }),
  // §8: the catalog's filter enum leaves out "settled".
  list_escrows: (s) =>
    withProps(s, {
      status: { type: 'string', enum: ['held', 'settled', 'released', 'refunded', 'expired'] },
    }),
  // §7: list_api_keys omits agent_id for the whole fleet (the catalog marks it required).
  list_api_keys: (s) => ({ ...s, required: [] }),
  // §7, §11: the rater and the webhook owner are the caller (from the key); agent_id in the body is a 422.
  rate_service: (s) => ({ ...s, required: ['service_id', 'rating'] }),
  register_webhook: (s) => ({ ...s, required: ['url', 'event_types', 'secret'] }),
  list_webhooks: (s) => ({ ...s, required: [] }),
};

/** Serialization corrections to the catalog's output schemas (CONTRACT.md §6–7). */
const MONEY = new Set([
  'balance',
  'amount',
  'cost',
  'fee',
  'price',
  'charged',
  'total',
  'remaining',
  'spent',
  'used',
]);
const TIMES = new Set(['created_at', 'updated_at', 'timestamp', 'verified_at', 'expires_at']);
function restOutput(tool: string, s: Schema): Schema {
  // §7: get_payment_history answers {history: [...]}; the catalog says a bare array.
  // §9: register_webhook answers active: 1 and filter_agent_ids: null when no filter was given.
  if (tool === 'register_webhook')
    return withProps(relax(s), {
      active: { type: ['boolean', 'integer'] },
      filter_agent_ids: { type: ['array', 'null'] },
    });
  if (tool === 'get_payment_history')
    return {
      type: 'object',
      properties: { history: { type: 'array', items: { type: 'object' } } },
      required: ['history'],
    };
  return relax(s);
}
function relax(s: Schema): Schema {
  const out: Schema = { ...s };
  if (s.properties) {
    out.properties = {};
    for (const [k, v] of Object.entries(s.properties)) {
      // §6: money fields are 2-decimal strings on REST (escrow amounts str(Decimal)); timestamps ISO strings.
      if (MONEY.has(k)) out.properties[k] = { type: ['string', 'number'] };
      else if (TIMES.has(k)) out.properties[k] = { type: ['string', 'number'] };
      // §6: *_cap stay numbers but are null when unset.
      else if (k.endsWith('_cap')) out.properties[k] = { type: ['number', 'null'] };
      else if (k === 'public_key') out.properties[k] = { type: ['string', 'null'] };
      else if (k === 'revoked') out.properties[k] = { type: ['boolean', 'integer'] };
      else out.properties[k] = relax(v);
    }
  }
  if (s.items) out.items = relax(s.items);
  return out;
}
function withProps(s: Schema, props: Record<string, Schema>): Schema {
  return { ...s, properties: { ...s.properties, ...props } };
}

interface Captured {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  status: number;
  response: unknown;
}

/** A recording proxy: forwards to the sandbox and keeps each request and response. */
async function startProxy(target: string, log: Captured[]): Promise<{ url: string; server: Server }> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const up = httpRequest(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          const out: Buffer[] = [];
          r.on('data', (c: Buffer) => out.push(c));
          r.on('end', () => {
            const text = Buffer.concat(out).toString('utf8');
            const url = new URL(req.url ?? '/', 'http://x');
            log.push({
              method: req.method ?? 'GET',
              path: url.pathname,
              query: url.searchParams,
              body: raw.length ? JSON.parse(raw.toString('utf8')) : undefined,
              status: r.statusCode ?? 0,
              response: text ? JSON.parse(text) : undefined,
            });
            res.writeHead(r.statusCode ?? 502, r.headers);
            res.end(text);
          });
        },
      );
      up.end(raw);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Which tool a captured request was, and its params as the catalog names them (path + query + body). */
function toParams(c: Captured): { tool: ToolName; params: Record<string, unknown> } | undefined {
  for (const spec of Object.values(ROUTES)) {
    if (spec.method !== c.method) continue;
    const names: string[] = [];
    const re = new RegExp(
      `^${spec.path.replace(/\{(\w+)\}/g, (_, n: string) => {
        names.push(n);
        return '([^/]+)';
      })}$`,
    );
    const m = re.exec(c.path);
    if (!m) continue;
    const params: Record<string, unknown> = {};
    names.forEach((n, i) => {
      params[n] = decodeURIComponent(m[i + 1]!);
    });
    const schema = byName.get(spec.tool)?.input_schema;
    for (const [k, v] of c.query) {
      const type = schema?.properties?.[k]?.type;
      params[k] = type === 'integer' || type === 'number' ? Number(v) : type === 'boolean' ? v === 'true' : v;
    }
    Object.assign(params, c.body as Record<string, unknown>);
    return { tool: spec.tool as ToolName, params };
  }
  return undefined;
}

describe('client ⇄ sandbox ⇄ catalog', () => {
  let sandbox: Sandbox;
  let proxy: { url: string; server: Server };
  const log: Captured[] = [];
  let admin: GreenHelixClient;
  let agentClient: GreenHelixClient;
  let agent: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ agents: 3, seed: 2, timeScale: 0, autoStartTraffic: false });
    proxy = await startProxy(sandbox.url, log);
    agent = sandbox.fleet[0]!;
    admin = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sandbox.keys.containment });
    agentClient = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sandbox.keys.agents[agent]! });

    // Every typed method the product uses, each at least once.
    const e1 = await agentClient.createEscrow({
      payer: agent,
      payee: sandbox.fleet[1]!,
      amount: 150,
      description: 'contract test',
    });
    const e2 = await agentClient.createEscrow(
      { payer: agent, payee: sandbox.fleet[1]!, amount: '25.50' },
      { idempotencyKey: 'contract-key-1' },
    );
    await admin.getEscrow({ escrow_id: e1.id });
    await admin.listEscrows({ agent_id: agent, status: 'held', limit: 10 });
    await admin.listAllEscrows({ agent_id: agent });
    await admin.getBalance({ agent_id: agent });
    await admin.getBudgetStatus({ agent_id: agent });
    await admin.getUsageSummary({ agent_id: agent, since: 0 });
    await admin.getTransactions({ agent_id: agent, limit: 5 });
    await admin.freezeWallet({ agent_id: agent });
    await admin.unfreezeWallet({ agent_id: agent });
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 0, monthly_cap: 0 });
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 500.5, monthly_cap: null });
    await admin.cancelEscrow({ escrow_id: e1.id });
    await agentClient.openDispute({ escrow_id: e2.id, opener: agent, reason: 'contract test' });
    await admin.releaseEscrow({ escrow_id: e2.id });
    await admin.getAgentIdentity({ agent_id: agent });
    await admin.getAgentReputation({ agent_id: agent });
    await admin.getVerifiedClaims({ agent_id: agent });
    await admin.getClaimChains({ agent_id: agent, limit: 5 });
    await admin.publishEvent({
      event_type: 'incident_opened',
      source: 'agent-incident-mcp',
      payload: { agent_id: agent },
    });
    await admin.getEvents({ since_id: 0, limit: 10 });
    await admin.listApiKeys({});
    await admin.listApiKeys({ agent_id: agent });
    for (const tool of [
      'get_service_analytics',
      'get_metrics_timeseries',
      'get_payment_history',
      'list_intents',
    ] as const) {
      await admin.call(
        tool,
        tool === 'get_metrics_timeseries' ? { agent_id: agent, interval: 'hour' } : { agent_id: agent },
      );
    }
    await admin.call('get_metric_deltas', { agent_id: agent });
    await admin.call('query_metrics', { agent_id: agent, metric_name: 'success_rate' });
    await agentClient.call('submit_metrics', { agent_id: agent, metrics: { success_rate: 0.97 } });
    await agentClient.call('build_claim_chain', { agent_id: agent });
    await agentClient.call('rate_service', { service_id: 'svc-1', rating: 3, review: 'neutral' });
    await admin.call('get_global_audit_log', { limit: 5 });
    const hook = (await agentClient.call('register_webhook', {
      url: 'https://hooks.example.com/a2a',
      event_types: ['incident_opened'],
      secret: 's3cret-value',
    })) as { id: string };
    await agentClient.call('list_webhooks', {});
    await agentClient.call('get_webhook_deliveries', { webhook_id: hook.id });
    await agentClient.call('delete_webhook', { webhook_id: hook.id });
  });
  afterAll(async () => {
    await admin?.close();
    await agentClient?.close();
    proxy?.server.close();
    await sandbox?.close();
  });

  it('every request validates against the catalog input_schema (with the documented corrections)', () => {
    const seen = new Set<string>();
    for (const c of log) {
      const mapped = toParams(c);
      expect(mapped, `${c.method} ${c.path}`).toBeDefined();
      const { tool, params } = mapped!;
      seen.add(tool);
      const entry = byName.get(tool);
      if (!entry) continue; // ingest_metrics is not in the catalog (CONTRACT §7 documents it)
      const schema = (INPUT_CORRECTIONS[tool] ?? ((s: Schema) => s))(entry.input_schema);
      const valid = ajv.validate(schema, params);
      expect(valid, `${tool}: ${ajv.errorsText()} ${JSON.stringify(params)}`).toBe(true);
      // §5: the REST body of create_escrow must not carry idempotency_key.
      if (tool === 'create_escrow') expect(c.body).not.toHaveProperty('idempotency_key');
      // §11: set_budget_cap never carries agent_id in the body.
      if (tool === 'set_budget_cap') expect(c.body).not.toHaveProperty('agent_id');
    }
    expect(seen.size).toBeGreaterThanOrEqual(30);
    expect(log.some((c) => c.path === '/v1/execute')).toBe(false);
  });

  it('every sandbox response validates against the catalog output_schema (with the documented corrections)', () => {
    let checked = 0;
    for (const c of log) {
      if (c.status >= 300) continue;
      const mapped = toParams(c);
      const entry = mapped && byName.get(mapped.tool);
      if (!entry) continue;
      const valid = ajv.validate(restOutput(entry.name, entry.output_schema), c.response);
      expect(valid, `${entry.name}: ${ajv.errorsText()} ${JSON.stringify(c.response).slice(0, 300)}`).toBe(
        true,
      );
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(30);
  });

  it('REST serialization: money as 2-decimal strings, escrow amounts as str(Decimal), ISO timestamps, caps as numbers', () => {
    const balance = log.find((c) => c.path.endsWith('/balance'))!.response as { balance: unknown };
    expect(balance.balance).toMatch(/^\d+\.\d{2}$/);
    const escrow = log.find(
      (c) => c.method === 'GET' && /^\/v1\/payments\/escrows\/[0-9a-f]{32}$/.test(c.path),
    )!.response as { amount: unknown; created_at: unknown };
    expect(escrow.amount).toBe('150.0');
    expect(escrow.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$/);
    const budget = log.filter((c) => c.method === 'PUT').at(-1)!.response as {
      daily_cap: unknown;
      monthly_cap: unknown;
    };
    expect(budget).toMatchObject({ daily_cap: 500.5, monthly_cap: null });
  });

  it('the client parses money to exact cents', async () => {
    const client = new GreenHelixClient({ baseUrl: sandbox.url, apiKey: sandbox.keys.monitor });
    const before = sandbox.groundTruth(agent);
    const b = await client.getBalance({ agent_id: agent });
    expect(b.balance).toBe(Math.round(Number(before.balance) * 100));
    const budget = await client.getBudgetStatus({ agent_id: agent });
    expect(budget.daily_cap).toBe(50_050);
    await client.close();
  });
});
