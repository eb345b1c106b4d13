/**
 * Client and sandbox against each other and against catalog.json, over real HTTP on port 0, through a
 * recording proxy (nothing of ours is mocked):
 * (a) every request the client builds validates against the tool's catalog input_schema, with the
 *     route-level corrections CONTRACT.md documents (INPUT_CORRECTIONS, each with its reference);
 * (b) every sandbox success validates against the tool's catalog output_schema with the documented
 *     serialization corrections (OUTPUT_CORRECTIONS), and the client's zod schema parses it.
 * The catalog is a copy of shared/greenhelix/catalog.json kept in test/fixtures so a clone runs alone;
 * the money paths that catalog leaves out (intents beyond list/refund, splits, subscriptions, withdraw,
 * convert) come from the gateway source's own gateway/src/catalog.json at ec0b30f, copied beside it.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GreenHelixClient, ROUTES, TOOL_OUTPUTS, type ToolName } from '../../src/greenhelix/index.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { type Captured, type RecordingProxy, startProxy } from './proxy.js';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  [k: string]: unknown;
};
const catalog = JSON.parse(
  readFileSync(new URL('../fixtures/greenhelix-catalog.json', import.meta.url), 'utf8'),
) as { name: string; input_schema: Schema; output_schema: Schema }[];
catalog.push(
  ...(JSON.parse(
    readFileSync(new URL('../fixtures/greenhelix-catalog-money-paths.json', import.meta.url), 'utf8'),
  ) as typeof catalog),
);
const byName = new Map(catalog.map((t) => [t.name, t]));
const ajv = new Ajv({ strict: false, allErrors: true });

const withProps = (s: Schema, props: Record<string, Schema>): Schema => ({
  ...s,
  properties: { ...s.properties, ...props },
});
const notRequired = (s: Schema, ...fields: string[]): Schema => ({
  ...s,
  required: (s.required ?? []).filter((f) => !fields.includes(f)),
});

/**
 * Route-level corrections to the catalog's input schemas. Each is a fact of the gateway's REST models
 * (CONTRACT.md is the reference), not a loosening for our convenience. Tools not listed are checked
 * against the catalog exactly.
 */
const INPUT_CORRECTIONS: Record<string, { ref: string; fix: (s: Schema) => Schema }> = {
  set_budget_cap: {
    ref: '§8 "PUT replaces both caps, so omitting one clears it": "no cap" is sent as an explicit null',
    fix: (s) =>
      withProps(s, { daily_cap: { type: ['number', 'null'] }, monthly_cap: { type: ['number', 'null'] } }),
  },
  create_escrow: {
    ref: '§6 "Request amounts: decimal number or string" (a string keeps cents exact); §7 the body also takes metadata?',
    fix: (s) => withProps(s, { amount: { type: ['number', 'string'] }, metadata: { type: 'object' } }),
  },
  create_intent: {
    ref: 'gateway/src/routes/v1/payments.py CreateIntentRequest: the REST body also takes metadata?',
    fix: (s) => withProps(s, { metadata: { type: 'object' } }),
  },
  list_escrows: {
    ref: '§8 "The catalog\'s filter enum leaves out settled"',
    fix: (s) =>
      withProps(s, {
        status: { type: 'string', enum: ['held', 'settled', 'released', 'refunded', 'expired'] },
      }),
  },
  register_agent: {
    ref: '§7 register_agent "B agent_id, public_key? (64-hex raw Ed25519), name?, capabilities?"',
    fix: (s) =>
      withProps(s, { name: { type: 'string' }, capabilities: { type: 'array', items: { type: 'string' } } }),
  },
  list_api_keys: {
    ref: '§7 list_api_keys "Q agent_id (omitted = whole fleet)"; offset/limit/paginate exist only through batch (§5)',
    fix: (s) => notRequired(s, 'agent_id'),
  },
  list_webhooks: {
    ref: '§7 list_webhooks "– (always the caller\'s)": no agent_id on REST',
    fix: (s) => notRequired(s, 'agent_id'),
  },
  register_webhook: {
    ref: '§7/§11 register_webhook: the agent comes from the key; secret is required',
    fix: (s) => ({ ...notRequired(s, 'agent_id'), required: ['url', 'event_types', 'secret'] }),
  },
  rate_service: {
    ref: '§7/§11 rate_service: "the rater is the caller"; agent_id in the body is a 422',
    fix: (s) => notRequired(s, 'agent_id'),
  },
  revoke_api_key: {
    ref: '§7 revoke_api_key "B key_hash_prefix": it searches only the caller\'s own keys, no agent_id',
    fix: (s) => notRequired(s, 'agent_id'),
  },
};

/** ingest_metrics is not in the catalog; its REST body as CONTRACT §7 documents it. */
const INGEST_INPUT: Schema = {
  type: 'object',
  properties: {
    agent_id: { type: 'string' },
    metrics: { type: 'object' },
    data_source: { type: 'string' },
    signature: { type: 'string' },
    nonce: { type: 'string' },
  },
  required: ['agent_id', 'metrics'],
  additionalProperties: false,
};

/** §6: on REST these become 2-decimal strings when they are numbers (escrow amounts str(Decimal)). */
const MONEY_FIELDS = [
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
  'new_balance',
];
/** §6: these become ISO-8601 UTC strings with +00:00. */
const TIME_FIELDS = ['created_at', 'updated_at', 'timestamp', 'verified_at', 'expires_at'];

/** Per-tool serialization corrections to the catalog's output schemas. */
const OUTPUT_CORRECTIONS: Record<string, { ref: string; fix: (s: Schema) => Schema }> = {
  get_payment_history: {
    ref: '§7 get_payment_history "{history:[…]}. The catalog says a bare array"',
    fix: () => ({
      type: 'object',
      properties: { history: { type: 'array', items: { type: 'object' } } },
      required: ['history'],
    }),
  },
  register_webhook: {
    ref: '§7 register_webhook "active:1, filter_agent_ids" (null when no filter was given)',
    fix: (s) =>
      withProps(s, {
        active: { type: ['boolean', 'integer'] },
        filter_agent_ids: { type: ['array', 'null'] },
      }),
  },
  set_budget_cap: {
    ref: '§6 "*_cap stay numbers" and §8 null clears a cap',
    fix: (s) =>
      withProps(s, { daily_cap: { type: ['number', 'null'] }, monthly_cap: { type: ['number', 'null'] } }),
  },
  get_budget_status: {
    ref: '§6 "*_cap stay numbers"; a cleared cap is null',
    fix: (s) =>
      withProps(s, { daily_cap: { type: ['number', 'null'] }, monthly_cap: { type: ['number', 'null'] } }),
  },
  get_events: {
    ref: '§7 get_events "created_at:"YYYY-MM-DDTHH:MM:SS"": bus times are naive UTC, not the +00:00 form of §6',
    fix: (s) => ({
      ...s,
      properties: {
        events: {
          type: 'array',
          items: withProps(s.properties?.events?.items ?? {}, {
            created_at: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}$' },
          }),
        },
      },
    }),
  },
  convert_currency: {
    ref: 'gateway/src/serialization.py: from_amount/to_amount are high-precision fields, sent as decimal text',
    fix: (s) =>
      withProps(s, {
        from_amount: { type: 'string', pattern: '^\\d+(\\.\\d+)?$' },
        to_amount: { type: 'string', pattern: '^\\d+(\\.\\d+)?$' },
      }),
  },
  test_webhook: {
    ref: '§7 test_webhook "{delivery_id,status,response_code|null}": the delivery is still in flight',
    fix: (s) => withProps(s, { response_code: { type: ['integer', 'null'] } }),
  },
};

/** §6 applied by field name, then the per-tool corrections (which win). */
function restOutput(tool: string, s: Schema): Schema {
  const rest = serialized(s);
  return OUTPUT_CORRECTIONS[tool]?.fix(rest) ?? rest;
}
function serialized(s: Schema): Schema {
  const out: Schema = { ...s };
  if (s.properties) {
    out.properties = {};
    for (const [k, v] of Object.entries(s.properties)) {
      if (MONEY_FIELDS.includes(k)) out.properties[k] = { type: 'string', pattern: '^-?\\d+\\.\\d+$' };
      else if (TIME_FIELDS.includes(k)) out.properties[k] = { type: 'string', pattern: '\\+00:00$' };
      else out.properties[k] = serialized(v);
    }
  }
  if (s.items) out.items = serialized(s.items);
  return out;
}

/** Which tool a captured REST request was, and its params as the catalog names them. */
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
      params[n] = decodeURIComponent(m[i + 1] as string);
    });
    const schema = byName.get(spec.tool)?.input_schema;
    for (const [k, v] of c.query) {
      const type = schema?.properties?.[k]?.type;
      params[k] = type === 'integer' || type === 'number' ? Number(v) : type === 'boolean' ? v === 'true' : v;
    }
    Object.assign(params, c.body as Record<string, unknown>);
    // §5: the create_escrow key travels as a header; as a param it is the catalog's idempotency_key.
    const key = c.headers['idempotency-key'];
    if (typeof key === 'string') params.idempotency_key = key;
    return { tool: spec.tool as ToolName, params };
  }
  return undefined;
}

function inputSchema(tool: string): Schema | undefined {
  if (tool === 'ingest_metrics') return INGEST_INPUT;
  const entry = byName.get(tool);
  if (!entry) return undefined;
  return INPUT_CORRECTIONS[tool]?.fix(entry.input_schema) ?? entry.input_schema;
}

describe('client ⇄ sandbox ⇄ catalog', () => {
  let sandbox: Sandbox;
  let proxy: RecordingProxy;
  let receiver: Server;
  let admin: GreenHelixClient;
  let agentClient: GreenHelixClient;
  let agent: string;
  const failures: string[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ agents: 3, seed: 2, timeScale: 0, autoStartTraffic: false });
    proxy = await startProxy(sandbox.url);
    receiver = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    agent = sandbox.fleet[0] as string;
    const payee = sandbox.fleet[1] as string;
    admin = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sandbox.keys.containment });
    agentClient = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sandbox.keys.agents[agent] as string });
    // Calls the sandbox refuses (no such intent, no registered MCP server) still build requests to check.
    const attempt = (p: Promise<unknown>, label: string) =>
      p.catch((e: { code?: string }) => failures.push(`${label}: ${e.code}`));

    // Every tool of the route table, each at least once, through the typed methods.
    const e1 = await agentClient.createEscrow({
      payer: agent,
      payee,
      amount: 150,
      description: 'contract test',
    });
    const e2 = await agentClient.createEscrow(
      { payer: agent, payee, amount: '25.50', timeout_hours: 2, metadata: { run: 'contract' } },
      { idempotencyKey: `contract-${randomBytes(6).toString('hex')}` },
    );
    await agentClient.createEscrow({
      payer: agent,
      payee,
      amount: '3.10',
      idempotency_key: `contract-${randomBytes(6).toString('hex')}`,
    });
    await admin.getEscrow({ escrow_id: e1.id });
    await admin.listEscrows({ agent_id: agent, status: 'held', limit: 10, offset: 0 });
    await admin.listAllEscrows({ agent_id: agent });
    await admin.getBalance({ agent_id: agent, currency: 'CREDITS' });
    await admin.getBudgetStatus({ agent_id: agent });
    await admin.getUsageSummary({ agent_id: agent, since: 0 });
    await admin.getServiceAnalytics({ agent_id: agent, since: 0 });
    await admin.getMetricsTimeseries({ agent_id: agent, interval: 'hour', limit: 24 });
    await admin.getTransactions({ agent_id: agent, limit: 5, offset: 0 });
    await admin.freezeWallet({ agent_id: agent });
    await admin.unfreezeWallet({ agent_id: agent });
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 0, monthly_cap: 0, alert_threshold: 0.8 });
    await admin.setBudgetCap({ agent_id: agent, daily_cap: '500.50', monthly_cap: null });
    await admin.cancelEscrow({ escrow_id: e1.id });
    await agentClient.openDispute({ escrow_id: e2.id, opener: agent, reason: 'contract test' });
    await admin.releaseEscrow({ escrow_id: e2.id });
    await admin.listIntents({ agent_id: agent, limit: 5 });
    const i1 = await agentClient.createIntent({ payer: agent, payee, amount: 40, description: 'contract' });
    const i2 = await agentClient.createIntent(
      { payer: agent, payee, amount: 12, currency: 'CREDITS', metadata: { run: 'contract' } },
      { idempotencyKey: `contract-${randomBytes(6).toString('hex')}` },
    );
    const i3 = await agentClient.createIntent({ payer: agent, payee, amount: 8 });
    await admin.getIntent({ intent_id: i1.id });
    await agentClient.captureIntent({ intent_id: i1.id });
    await agentClient.partialCapture({ intent_id: i2.id, amount: 5 });
    await admin.refundIntent({ intent_id: i3.id });
    await agentClient.createSplitIntent({
      payer: agent,
      amount: 10,
      splits: [
        { payee, percentage: 60 },
        { payee: sandbox.fleet[2] as string, percentage: 40 },
      ],
      description: 'contract',
    });
    const s1 = await agentClient.createSubscription({
      payer: agent,
      payee,
      amount: 3,
      interval: 'daily',
      description: 'contract',
    });
    await admin.listSubscriptions({ agent_id: agent, status: 'active', limit: 10, offset: 0 });
    await admin.getSubscription({ subscription_id: s1.id });
    await admin.processDueSubscriptions();
    await admin.cancelSubscription({ subscription_id: s1.id });
    await attempt(admin.reactivateSubscription({ subscription_id: s1.id }), 'reactivate_subscription');
    await agentClient.convertCurrency({
      agent_id: agent,
      amount: 100,
      from_currency: 'CREDITS',
      to_currency: 'USD',
    });
    await agentClient.withdraw({ agent_id: agent, amount: 1, currency: 'USD', description: 'contract' });
    await attempt(admin.refundIntent({ intent_id: 'int_missing' }), 'refund_intent');
    await admin.getPaymentHistory({ agent_id: agent, limit: 5 });
    await admin.getAgentIdentity({ agent_id: agent });
    await admin.getAgentReputation({ agent_id: agent });
    await admin.getVerifiedClaims({ agent_id: agent });
    await agentClient.submitMetrics({
      agent_id: agent,
      metrics: { success_rate: 0.97 },
      data_source: 'self_reported',
    });
    await agentClient.ingestMetrics({ agent_id: agent, metrics: { success_rate: 0.97 } });
    await agentClient.ingestMetrics({ agent_id: agent, metrics: { success_rate: 0.95 } });
    await agentClient.buildClaimChain({ agent_id: agent });
    await admin.getClaimChains({ agent_id: agent, limit: 5 });
    await admin.queryMetrics({ agent_id: agent, metric_name: 'success_rate', since: 0, limit: 10 });
    await admin.getMetricDeltas({ agent_id: agent, metric_name: 'success_rate' });
    await attempt(admin.getTrustScore({ server_id: 'srv-unregistered', window: '24h' }), 'get_trust_score');
    const { publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
    await admin.registerAgent({ agent_id: 'contract-new-agent', public_key: raw, name: 'contract' });
    await admin.verifyAgent({
      agent_id: 'contract-new-agent',
      message: 'nonce-1',
      signature: 'ab'.repeat(64),
    });
    await agentClient.rateService({ service_id: 'svc-1', rating: 3, review: 'neutral' });
    await admin.publishEvent({
      event_type: 'incident_opened',
      source: 'agent-incident-mcp',
      payload: { agent_id: agent },
    });
    await admin.getEvents({ since_id: 0, limit: 10, event_type: 'incident_opened' });
    await admin.listApiKeys({});
    await admin.listApiKeys({ agent_id: agent });
    await admin.revokeApiKey({ key_hash_prefix: '00000000' });
    await admin.getGlobalAuditLog({ since: 0, limit: 5 });
    await fetch(`${sandbox.url}/_sandbox/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sandbox.controlToken}` },
      body: JSON.stringify({ allow_loopback_webhooks: true }),
    });
    const hook = await agentClient.registerWebhook({
      url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
      event_types: ['incident_opened'],
      secret: 's3cret-value',
      filter_agent_ids: [agent],
    });
    await agentClient.listWebhooks();
    await agentClient.testWebhook({ webhook_id: hook.id });
    await agentClient.getWebhookDeliveries({ webhook_id: hook.id, limit: 5 });
    await agentClient.deleteWebhook({ webhook_id: hook.id });
    await agentClient.batch([
      { tool: 'get_balance', params: { agent_id: agent } },
      {
        tool: 'create_escrow',
        params: { payer: agent, payee, amount: 2, idempotency_key: `b-${randomBytes(4).toString('hex')}` },
      },
      { tool: 'set_budget_cap', params: { agent_id: agent, daily_cap: 100, monthly_cap: 3000 } },
    ]);
    // Last: rotating revokes the monitor key, which nothing after this uses.
    const monitor = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sandbox.keys.monitor });
    await monitor.rotateKey({ current_key: sandbox.keys.monitor });
    await monitor.close();
  });
  afterAll(async () => {
    await admin?.close();
    await agentClient?.close();
    await proxy?.close();
    receiver?.close();
    await sandbox?.close();
  });

  it('exercised every route, and only the expected calls were refused', () => {
    const tools = new Set(proxy.log.map((c) => toParams(c)?.tool).filter(Boolean));
    expect([...tools].sort()).toEqual(Object.keys(ROUTES).sort());
    expect(failures.sort()).toEqual([
      'get_trust_score: server_not_found',
      // A cancelled subscription is final on the gateway: reactivate takes only a suspended one.
      'reactivate_subscription: invalid_state',
      'refund_intent: intent_not_found',
    ]);
    expect(proxy.log.some((c) => c.path === '/v1/execute')).toBe(false);
  });

  it('(a) every REST request validates against the catalog input_schema with the documented corrections', () => {
    let checked = 0;
    for (const c of proxy.log) {
      if (c.path === '/v1/batch') continue;
      const mapped = toParams(c);
      expect(mapped, `${c.method} ${c.path}`).toBeDefined();
      const { tool, params } = mapped as { tool: ToolName; params: Record<string, unknown> };
      const schema = inputSchema(tool) as Schema;
      expect(ajv.validate(schema, params), `${tool}: ${ajv.errorsText()} ${JSON.stringify(params)}`).toBe(
        true,
      );
      // The REST model refuses unknown fields: nothing outside the catalog's properties was sent.
      for (const k of Object.keys(params))
        expect(Object.keys(schema.properties ?? {}), `${tool}.${k}`).toContain(k);
      if (c.method === 'GET' || c.method === 'DELETE') expect(c.rawBody, `${tool} body`).toBe('');
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(Object.keys(ROUTES).length);
  });

  it('(a) the corrections CONTRACT documents hold on the wire', () => {
    const of = (tool: string) => proxy.log.filter((c) => toParams(c)?.tool === tool);
    // §5: create_escrow's REST body never carries idempotency_key; the key is the Idempotency-Key header.
    const creates = of('create_escrow');
    for (const c of creates) expect(c.body).not.toHaveProperty('idempotency_key');
    expect(creates.filter((c) => typeof c.headers['idempotency-key'] === 'string')).toHaveLength(2);
    // §11: set_budget_cap has agent_id in the path only.
    for (const c of of('set_budget_cap')) {
      expect(c.path).toMatch(/^\/v1\/billing\/wallets\/[^/]+\/budget$/);
      expect(c.body).not.toHaveProperty('agent_id');
      expect(Object.keys(c.body as object).sort()).toEqual(
        expect.arrayContaining(['daily_cap', 'monthly_cap']),
      );
    }
    // §11: publish_event has source and no agent_id; register_webhook url/event_types/secret; rate_service rating/review.
    expect(Object.keys(of('publish_event')[0]?.body as object).sort()).toEqual([
      'event_type',
      'payload',
      'source',
    ]);
    expect(Object.keys(of('register_webhook')[0]?.body as object).sort()).toEqual([
      'event_types',
      'filter_agent_ids',
      'secret',
      'url',
    ]);
    expect(of('rate_service')[0]?.body).toEqual({ rating: 3, review: 'neutral' });
    // §11: verify_agent has agent_id in the path and message + signature in the body.
    expect(Object.keys(of('verify_agent')[0]?.body as object).sort()).toEqual(['message', 'signature']);
    // §7: rotate_key carries the confirmation header.
    expect(of('rotate_key')[0]?.headers['x-rotate-confirmation']).toBe('confirm');
  });

  it('(a) batch calls use the catalog params, with idempotency_key as a param (only batch accepts it, §5)', () => {
    const batch = proxy.log.find((c) => c.path === '/v1/batch') as Captured;
    const { calls } = batch.body as { calls: { tool: string; params: Record<string, unknown> }[] };
    expect(calls.map((c) => c.tool)).toEqual(['get_balance', 'create_escrow', 'set_budget_cap']);
    for (const c of calls) {
      const schema = byName.get(c.tool)?.input_schema as Schema;
      expect(ajv.validate(schema, c.params), `${c.tool}: ${ajv.errorsText()}`).toBe(true);
    }
    expect(calls[1]?.params).toHaveProperty('idempotency_key');
    expect(batch.response).toMatchObject({
      results: [{ success: true }, { success: true }, { success: true }],
    });
  });

  it('(b) every sandbox success validates against the catalog output_schema with the documented corrections, and the client parses it', () => {
    const validated = new Set<string>();
    for (const c of proxy.log) {
      if (c.status >= 300 || c.path === '/v1/batch') continue;
      const { tool } = toParams(c) as { tool: ToolName };
      const entry = byName.get(tool);
      if (entry) {
        const ok = ajv.validate(restOutput(tool, entry.output_schema), c.response);
        expect(ok, `${tool}: ${ajv.errorsText()} ${JSON.stringify(c.response).slice(0, 300)}`).toBe(true);
      }
      const parsed = TOOL_OUTPUTS[tool].safeParse(c.response);
      expect(parsed.success, `${tool}: ${JSON.stringify(parsed.error?.issues[0])}`).toBe(true);
      validated.add(tool);
    }
    expect([...validated].sort()).toEqual(
      Object.keys(ROUTES)
        .filter((t) => t !== 'reactivate_subscription' && t !== 'get_trust_score')
        .sort(),
    );
  });

  it('(b) REST serialization as CONTRACT §6–7 says: money strings, str(Decimal) escrow amounts, ISO times, caps as numbers, no dispute_rate', () => {
    const response = (tool: string) =>
      proxy.log.find((c) => c.status < 300 && toParams(c)?.tool === tool)?.response as Record<
        string,
        unknown
      >;
    expect(response('get_balance').balance).toMatch(/^\d+\.\d{2}$/);
    const escrow = response('get_escrow');
    expect(escrow.amount).toBe('150.0');
    expect(escrow.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$/);
    // get_escrow answers 7 fields (tools/payments.py `_get_escrow`); the list carries the whole row.
    expect(Object.keys(escrow).sort()).toEqual([
      'amount',
      'created_at',
      'description',
      'id',
      'payee',
      'payer',
      'status',
    ]);
    const listed = (response('list_escrows').escrows as Record<string, unknown>[])[0]!;
    expect(typeof listed.timeout_at).toBe('number');
    expect(listed).toHaveProperty('updated_at');
    const caps = proxy.log.filter((c) => toParams(c)?.tool === 'set_budget_cap').at(-1)?.response;
    expect(caps).toMatchObject({ daily_cap: 500.5, monthly_cap: null });
    expect(response('get_agent_reputation')).not.toHaveProperty('dispute_rate');
    expect(response('get_payment_history')).toHaveProperty('history');
    expect(typeof response('get_budget_status').daily_spend).toBe('number');
  });

  it('the client turns money into exact cents, and its keyHashPrefix is the one the gateway lists', async () => {
    const client = new GreenHelixClient({ baseUrl: sandbox.url, apiKey: sandbox.keys.containment });
    const truth = sandbox.groundTruth(agent);
    const b = await client.getBalance({ agent_id: agent });
    expect(b.balance).toBe(Math.round(Number(truth.balance) * 100));
    expect(
      (
        await client.getEscrow({
          escrow_id: (await client.listEscrows({ agent_id: agent })).escrows[0]?.id as string,
        })
      ).amount % 1,
    ).toBe(0);
    const { keys } = await client.listApiKeys({});
    const mine = keys.find((k) => k.key_hash_prefix === client.keyHashPrefix);
    expect(mine?.agent_id).toBeDefined();
    await client.close();
  });
});
