/**
 * Containment under live load, on the REAL GreenHelix gateway (its own source on loopback, as in
 * `npm run test:gateway`) beside the embedded sandbox. Each run: a fresh payer agent, 8 concurrent
 * creators on its own key (half REST, half `/v1/batch` in batches of 5, as the provider's MCP servers
 * call tools), containment through the `contain_agent` MCP tool once ≥ 500 escrows were created, while
 * the creators keep running; the gateway's books are read right after the call returns (the wallet is
 * frozen then, so they cannot move), the load is stopped, a second call finishes what is left, and the
 * books are read again. Every verdict comes from the gateway itself: its SQLite files for the real one,
 * `groundTruth()` for the sandbox. Needs root for the real gateway (skipped with one line otherwise).
 * Prints a markdown table per target and writes bench/results/live-load.json. Not part of `npm test`.
 *
 *   npx tsx bench/live-load.ts [--runs 10] [--sandbox-runs 3] [--before 600] [--creators 8]
 *   npm run bench:live-load -- --runs 10
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseCents } from '../src/greenhelix/money.js';
import { startSandbox } from '../src/sandbox/index.js';
import { type Fleet, provisionDirect, provisionFleet, rest } from '../test/gateway/fleet.js';
import { buildRootfs, type RealGateway, skipReason, startGateway } from '../test/gateway/harness.js';
import { type LoadReport, startEscrowLoad } from '../test/gateway/load.js';
import { type Product, startProduct } from '../test/gateway/product.js';
import { GatewayTruth } from '../test/gateway/truth.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'sandbox-runs': { type: 'string' },
    before: { type: 'string' },
    creators: { type: 'string' },
  },
});
const RUNS = Number(values.runs ?? 10);
const SANDBOX_RUNS = Number(values['sandbox-runs'] ?? 3);
/** Escrows created before containment starts: ≥ 500, and more than one page of the product's listing. */
const BEFORE = Number(values.before ?? 600);
const CREATORS = Number(values.creators ?? 8);
const AMOUNT = '150.00';
const PAYEE = 'vendor-flaky';

/** The gateway's books for the payer at one moment. */
interface Books {
  /** Escrows the payer paid that the gateway refunded (each counted once). */
  refunded: number;
  /** Money the gateway deposited back for them, cents. */
  refundedCents: number;
  /** Refund deposits beyond the first, over all escrows. */
  doubleRefunds: number;
  held: number;
  heldCents: number;
  frozen: boolean;
  /** Every escrow the payer has paid, any status. */
  escrows: number;
}

interface ContainOut {
  incident_id: string;
  existing: boolean;
  status: string;
  escrows_cancelled: number;
  escrows_failed: number;
  amount_unlocked: string;
  time_to_freeze_ms: number | null;
  refund_window_ms: number | null;
  elapsed_ms: number;
  steps: { action: string; success: boolean; started_at: number; duration_ms: number }[];
  exposure?: { wallet_frozen: boolean; caps_zero: boolean; held_escrows: number | null };
}

interface Target {
  name: 'gateway' | 'sandbox';
  url: string;
  /** A fresh, funded payer with its own key, and the fleet the product is configured with. */
  payer(run: number): Promise<{ id: string; key: string; fleet: Fleet }>;
  books(payer: string): Books;
  /** Creation times (epoch ms) of the payer's held escrows, when the target keeps them. */
  heldCreatedAt?(payer: string): number[];
}

interface Run {
  target: string;
  run: number;
  payer: string;
  error?: string;
  created_before_contain?: number;
  created_total?: number;
  created_by?: LoadReport['createdBy'];
  refused?: Record<string, number>;
  gateway_escrows?: number;
  held_at_start?: number;
  first?: {
    status: string;
    call_ms: number;
    elapsed_ms: number;
    time_to_freeze_ms: number | null;
    refund_window_ms: number | null;
    /** Refund rounds (unfreeze, cancel, refreeze) the call ran: with backoff between them while frozen. */
    rounds: number;
    escrows_cancelled: number;
    escrows_failed: number;
    amount_unlocked: string;
    cancels_per_s: number;
    /** Escrows cancelled per second the wallet was open (the refund windows only, backoff excluded). */
    cancels_per_window_s: number | null;
    product_held: number | null;
    books: Books;
    exact: boolean;
    held_exact: boolean;
    /**
     * When the product's held count differs from the gateway's: when the last refund window's freeze was
     * sent and answered, when the call returned, and the creation times of the escrows held right after it
     * that were created from 1 s before that freeze on, in ms from the freeze's start (the gateway stamps
     * an escrow after its frozen check and debit, and inserts it after further awaits).
     */
    held_mismatch?: {
      last_freeze_started_at: number;
      last_freeze_done_at: number;
      returned_at: number;
      held_created_near_last_freeze_ms: number[];
    };
  };
  finish?: {
    existing: boolean;
    status: string;
    escrows_cancelled: number;
    amount_unlocked: string;
    books: Books;
    exact: boolean;
  };
  double_refunds?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function contain(product: Product, agent: string, reason: string) {
  const t0 = performance.now();
  const r = await product.call('contain_agent', { agent_id: agent, reason });
  const ms = performance.now() - t0;
  if (r.isError) throw new Error(`contain_agent failed: ${JSON.stringify(r.content).slice(0, 500)}`);
  return { out: r.structuredContent as unknown as ContainOut, ms };
}

/** The product's totals equal the gateway's books exactly: escrows refunded and money returned. */
const exact = (out: ContainOut, b: Books) =>
  out.escrows_cancelled === b.refunded && Number(parseCents(out.amount_unlocked)) === b.refundedCents;

async function oneRun(target: Target, run: number): Promise<Run> {
  const payer = await target.payer(run);
  const rec: Run = { target: target.name, run, payer: payer.id };
  const product = await startProduct(target.url, payer.fleet);
  const load = startEscrowLoad({
    url: target.url,
    key: payer.key,
    payer: payer.id,
    payee: PAYEE,
    amount: AMOUNT,
    creators: CREATORS,
    channels: ['rest', 'batch'],
    batchSize: 5,
  });
  let report: LoadReport | undefined;
  try {
    await load.reached(BEFORE);
    rec.created_before_contain = load.created();
    rec.held_at_start = target.books(payer.id).held;
    const first = await contain(product, payer.id, 'bench: runaway loop under live load');
    // The wallet is frozen once the call returns: the books cannot move until the next call.
    const afterFirst = target.books(payer.id);
    const returnedAt = Date.now();
    const createdAt = target.heldCreatedAt?.(payer.id);
    const seconds = first.out.elapsed_ms / 1000;
    rec.first = {
      status: first.out.status,
      call_ms: Math.round(first.ms),
      elapsed_ms: first.out.elapsed_ms,
      time_to_freeze_ms: first.out.time_to_freeze_ms,
      refund_window_ms: first.out.refund_window_ms,
      rounds: first.out.steps.filter((x) => x.action === 'cancel_held_escrows').length,
      escrows_cancelled: first.out.escrows_cancelled,
      escrows_failed: first.out.escrows_failed,
      amount_unlocked: first.out.amount_unlocked,
      cancels_per_s: seconds > 0 ? +(first.out.escrows_cancelled / seconds).toFixed(1) : 0,
      cancels_per_window_s: first.out.refund_window_ms
        ? +((first.out.escrows_cancelled * 1000) / first.out.refund_window_ms).toFixed(1)
        : null,
      product_held: first.out.exposure?.held_escrows ?? null,
      books: afterFirst,
      exact: exact(first.out, afterFirst),
      held_exact: (first.out.exposure?.held_escrows ?? -1) === afterFirst.held,
    };
    const freezes = first.out.steps.filter(
      (x) => (x.action === 'freeze_wallet' || x.action === 'close_refund_window') && x.success,
    );
    const lastFreeze = freezes.at(-1);
    if (!rec.first.held_exact && lastFreeze && createdAt) {
      const at = lastFreeze.started_at;
      rec.first.held_mismatch = {
        last_freeze_started_at: at,
        last_freeze_done_at: at + lastFreeze.duration_ms,
        returned_at: returnedAt,
        held_created_near_last_freeze_ms: createdAt
          .filter((t) => t >= at - 1000)
          .map((t) => Math.round(t - at))
          .sort((a, b) => a - b),
      };
    }
    // The loop keeps trying for a moment after containment; then it is stopped (its process killed).
    await sleep(500);
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    report = await load.stop();
  }
  rec.created_total = report.created;
  rec.created_by = report.createdBy;
  rec.refused = report.refused;
  try {
    if (!rec.error) {
      const fin = await contain(product, payer.id, 'bench: after the loop stopped');
      const books = target.books(payer.id);
      rec.finish = {
        existing: fin.out.existing,
        status: fin.out.status,
        escrows_cancelled: fin.out.escrows_cancelled,
        amount_unlocked: fin.out.amount_unlocked,
        books,
        exact: exact(fin.out, books) && books.held === 0 && books.frozen && fin.out.status === 'contained',
      };
    }
  } catch (e) {
    rec.error = (e as Error).message;
  }
  const final = target.books(payer.id);
  rec.gateway_escrows = final.escrows;
  rec.double_refunds = final.doubleRefunds;
  await product.close();
  return rec;
}

// ---- the real gateway ---------------------------------------------------------------------------

async function realGatewayRuns(): Promise<{ runs: Run[]; version: string; start_ms: number } | string> {
  const why = skipReason();
  if (why) return why;
  const gw: RealGateway = await startGateway({ rootfs: buildRootfs() });
  const truth = new GatewayTruth(gw.dataDir);
  try {
    const base = await provisionFleet(gw, { agents: [], counterparties: [PAYEE] });
    const target: Target = {
      name: 'gateway',
      url: gw.url,
      // Keyed as the test's LIVE agent: a funded wallet and a bootstrap pro key made directly, then the
      // key it uses from POST /v1/billing/keys, and caps set with its own key.
      async payer(run) {
        const id = `live-${process.pid}-${String(run).padStart(2, '0')}`;
        const [boot] = provisionDirect(gw, {
          wallets: [{ agent_id: id, balance: '150000.00' }],
          keys: [{ agent_id: id, tier: 'pro', scopes: ['read', 'write'] }],
        });
        const k = await rest(gw.url, 'POST', '/v1/billing/keys', { key: boot!.key, body: { tier: 'pro' } });
        if (k.status !== 201) throw new Error(`billing key for ${id}: ${k.status} ${JSON.stringify(k.body)}`);
        const key = (k.body as { key: string }).key;
        const caps = await rest(gw.url, 'PUT', `/v1/billing/wallets/${id}/budget`, {
          key,
          body: { daily_cap: '5000.00', monthly_cap: '50000.00' },
        });
        if (caps.status !== 200)
          throw new Error(`caps for ${id}: ${caps.status} ${JSON.stringify(caps.body)}`);
        return { id, key, fleet: { ...base, ids: [id], via: { [id]: 'billing_keys' }, keys: { [id]: key } } };
      },
      heldCreatedAt(payer) {
        // The gateway stores epoch seconds (float); ms either way.
        return truth
          .escrows(payer, 'held')
          .map((e) => (e.created_at < 1e12 ? e.created_at * 1000 : e.created_at));
      },
      books(payer) {
        const refunded = truth.escrows(payer, 'refunded');
        const tally = truth.refunds(payer);
        const held = truth.held(payer);
        return {
          refunded: refunded.length,
          refundedCents: tally.refundedCents,
          doubleRefunds: tally.refundCount - tally.byEscrow.size,
          held: held.count,
          heldCents: held.cents,
          frozen: truth.frozen(payer),
          escrows: truth.escrows(payer).length,
        };
      },
    };
    const runs: Run[] = [];
    for (let i = 1; i <= RUNS; i++) {
      const r = await oneRun(target, i);
      process.stderr.write(`[gateway] run ${i}: ${summary(r)}\n`);
      runs.push(r);
    }
    return { runs, version: gw.version, start_ms: gw.startMs };
  } catch (e) {
    process.stderr.write(`[gateway] log tail:\n${gw.logTail(40)}\n`);
    throw e;
  } finally {
    truth.close();
    await gw.stop();
  }
}

// ---- the embedded sandbox -------------------------------------------------------------------------

/** Agents in the sandbox fleet; all but the payer fund it (a sandbox wallet starts with $2,000). */
const SANDBOX_AGENTS = 100;

async function sandboxRun(run: number): Promise<Run> {
  const sandbox = await startSandbox({
    agents: SANDBOX_AGENTS,
    seed: run,
    latencyMs: 0,
    jitterMs: 0,
    timeScale: 1,
    autoStartTraffic: false,
  });
  try {
    const target: Target = {
      name: 'sandbox',
      url: sandbox.url,
      async payer() {
        const id = sandbox.fleet[0]!;
        // The sandbox has no deposit: every other fleet agent pays the payer $1,950 through a released
        // escrow (~$195,000 in all, enough for ≥ 1,200 escrows of $150 plus fees).
        for (const from of sandbox.fleet.slice(1)) {
          const key = sandbox.keys.agents[from]!;
          const e = await rest(sandbox.url, 'POST', '/v1/payments/escrows', {
            key,
            body: { payer: from, payee: id, amount: '1950.00', description: 'funding' },
          });
          if (e.status !== 201)
            throw new Error(`funding from ${from}: ${e.status} ${JSON.stringify(e.body)}`);
          const r = await rest(
            sandbox.url,
            'POST',
            `/v1/payments/escrows/${(e.body as { id: string }).id}/release`,
            { key },
          );
          if (r.status !== 200)
            throw new Error(`release from ${from}: ${r.status} ${JSON.stringify(r.body)}`);
        }
        return {
          id,
          key: sandbox.keys.agents[id]!,
          fleet: {
            ids: [id],
            via: { [id]: 'billing_keys' },
            keys: { [id]: sandbox.keys.agents[id]! },
            counterpartyKeys: {},
            monitorKey: sandbox.keys.monitor,
            containmentKey: sandbox.keys.containment,
            monitorAgent: 'ops-monitor',
            containmentAgent: 'ops-containment',
          },
        };
      },
      books(payer) {
        const t = sandbox.groundTruth(payer);
        return {
          refunded: t.escrows_refunded,
          refundedCents: Number(parseCents(t.refunded_amount)),
          doubleRefunds: t.double_refunds,
          held: t.held_escrows,
          heldCents: Number(parseCents(t.held_amount)),
          frozen: t.frozen,
          escrows: t.held_escrows + t.escrows_refunded,
        };
      },
    };
    return await oneRun(target, run);
  } finally {
    await sandbox.close();
  }
}

// ---- report ---------------------------------------------------------------------------------------

function summary(r: Run): string {
  if (r.error) return `ERROR ${r.error}`;
  const f = r.first!;
  return (
    `${r.created_total} created (${r.held_at_start} held at start), ${f.status} in ${f.elapsed_ms} ms, ` +
    `freeze ${f.time_to_freeze_ms} ms, window ${f.refund_window_ms} ms in ${f.rounds} rounds, ${f.escrows_cancelled} cancelled ` +
    `(${f.cancels_per_s}/s), held after ${f.books.held} (product says ${f.product_held}), ` +
    `exact ${f.exact}/${r.finish?.exact}, double refunds ${r.double_refunds}` +
    (f.held_mismatch ? `; held mismatch ${JSON.stringify(f.held_mismatch)}` : '')
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const stat = (xs: (number | null | undefined)[], digits = 0) => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  if (!v.length) return '–';
  const f = (x: number) => x.toFixed(digits);
  return `${f(median(v))} (${f(Math.min(...v))}–${f(Math.max(...v))})`;
};

function table(name: string, runs: Run[]): Record<string, unknown> {
  const ok = runs.filter((r) => !r.error && r.first);
  const firsts = ok.map((r) => r.first!);
  const row = {
    target: name,
    runs: runs.length,
    errors: runs.length - ok.length,
    created: stat(ok.map((r) => r.created_total)),
    held_at_start: stat(ok.map((r) => r.held_at_start)),
    elapsed_ms: stat(firsts.map((f) => f.elapsed_ms)),
    time_to_freeze_ms: stat(firsts.map((f) => f.time_to_freeze_ms)),
    refund_window_ms: stat(firsts.map((f) => f.refund_window_ms)),
    refund_rounds: stat(firsts.map((f) => f.rounds)),
    cancels_per_s: stat(
      firsts.map((f) => f.cancels_per_s),
      1,
    ),
    cancels_per_window_s: stat(
      firsts.map((f) => f.cancels_per_window_s),
      1,
    ),
    held_after_first: stat(firsts.map((f) => f.books.held)),
    statuses: [...new Set(firsts.map((f) => f.status))].join(', '),
    exact_first: `${firsts.filter((f) => f.exact).length}/${runs.length}`,
    held_stated_exactly: `${firsts.filter((f) => f.held_exact).length}/${runs.length}`,
    exact_finish: `${ok.filter((r) => r.finish?.exact).length}/${runs.length}`,
    double_refunds: runs.reduce((n, r) => n + (r.double_refunds ?? 0), 0),
  };
  console.log(`\n### ${name}: median (min–max) over ${runs.length} runs\n`);
  console.log('| | |\n|---|---|');
  for (const [k, v] of Object.entries(row)) if (k !== 'target') console.log(`| ${k} | ${v} |`);
  console.log(
    '\n| run | created | held at start | status | elapsed ms | freeze ms | window ms | rounds | cancelled | cancels/s | held after (gateway / product) | exact first | exact finish | double refunds |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    if (r.error || !r.first) {
      console.log(`| ${r.run} | ERROR: ${r.error} |||||||||||| `);
      continue;
    }
    const f = r.first;
    console.log(
      `| ${r.run} | ${r.created_total} | ${r.held_at_start} | ${f.status} | ${f.elapsed_ms} | ${f.time_to_freeze_ms} | ${f.refund_window_ms} | ${f.rounds} | ${f.escrows_cancelled} | ${f.cancels_per_s} | ${f.books.held} / ${f.product_held} | ${f.exact} | ${r.finish?.exact} | ${r.double_refunds} |`,
    );
  }
  for (const r of runs)
    if (r.first?.held_mismatch)
      console.log(
        `\nrun ${r.run}: the product stated ${r.first.product_held} held, the gateway had ${r.first.books.held}; ` +
          `last freeze answered in ${r.first.held_mismatch.last_freeze_done_at - r.first.held_mismatch.last_freeze_started_at} ms; ` +
          `held escrows created near it (ms from its start): ${r.first.held_mismatch.held_created_near_last_freeze_ms.join(', ') || 'none'}`,
      );
  return row;
}

const gateway = await realGatewayRuns();
if (typeof gateway === 'string') console.log(`SKIPPED real gateway: ${gateway}`);
const sandboxRuns: Run[] = [];
for (let i = 1; i <= SANDBOX_RUNS; i++) {
  const r = await sandboxRun(i);
  process.stderr.write(`[sandbox] run ${i}: ${summary(r)}\n`);
  sandboxRuns.push(r);
}

console.log(
  `\nContainment under live load: ${CREATORS} creators (half REST, half /v1/batch ×5) on the payer's own key, ` +
    `contain_agent once ≥ ${BEFORE} escrows of ${AMOUNT} were created (Node ${process.version})`,
);
const summaries: Record<string, unknown>[] = [];
if (typeof gateway !== 'string') summaries.push(table(`real gateway ${gateway.version}`, gateway.runs));
summaries.push(table('sandbox (latency 0, time scale 1)', sandboxRuns));

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/live-load.json', import.meta.url),
  `${JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      creators: CREATORS,
      channels: ['rest', 'batch'],
      batch_size: 5,
      before_contain: BEFORE,
      amount: AMOUNT,
      gateway:
        typeof gateway === 'string'
          ? { skipped: gateway }
          : { version: gateway.version, start_ms: gateway.start_ms, runs: gateway.runs },
      sandbox: { runs: sandboxRuns },
      summaries,
    },
    null,
    2,
  )}\n`,
);
process.exit(0);
