/**
 * Client throughput and latency: cancelling N held escrows with the GreenHelix client at its default
 * concurrency versus one at a time (concurrency 1), against the embedded sandbox with injected latency.
 * Each run gets a fresh sandbox; the escrows (150.00 each, drawn on the fleet's shared wallet as in the
 * SPEC incident) are made through the containment (admin) key before the latency is switched on, then
 * cancelled through the same key. Prints a table and writes bench/results/client.json.
 *
 *   npx tsx bench/client.ts [--escrows 312] [--latency-ms 200] [--budget-s 120]
 *
 * `--budget-s` bounds each run: a run that reaches it stops issuing cancels and is reported as
 * incomplete with what it measured (one at a time, 312 × 200 ms is about 63 s).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GreenHelixClient } from '../src/greenhelix/index.js';
import { startSandbox } from '../src/sandbox/index.js';

const { values } = parseArgs({
  options: {
    escrows: { type: 'string' },
    'latency-ms': { type: 'string' },
    'budget-s': { type: 'string' },
  },
});
const N = positiveInt('escrows', values.escrows ?? '312');
const LATENCY_MS = positiveInt('latency-ms', values['latency-ms'] ?? '200');
const BUDGET_MS = positiveInt('budget-s', values['budget-s'] ?? '120') * 1000;

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

interface Row {
  mode: string;
  concurrency: number;
  escrows: number;
  cancelled: number;
  failed: number;
  complete: boolean;
  wall_ms: number;
  cancels_per_s: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  /** Time on the wire per attempt, without the time queued behind the concurrency limit. */
  wire_p50_ms: number;
}

async function run(mode: string, concurrency: number | undefined): Promise<Row> {
  const sandbox = await startSandbox({ agents: 2, seed: 5, timeScale: 0, autoStartTraffic: false });
  const payer = sandbox.sharedWallet;
  const payee = sandbox.fleet[0];
  if (!payer || !payee) throw new Error('the sandbox has no shared wallet or no agent');
  const wire: number[] = [];
  const admin = new GreenHelixClient({
    baseUrl: sandbox.url,
    apiKey: sandbox.keys.containment,
    ...(concurrency ? { concurrency } : {}),
    timeoutMs: 30_000,
    logger: { debug: (o) => void ('ms' in o && typeof o.ms === 'number' && wire.push(o.ms)) },
  });
  try {
    await Promise.all(
      Array.from({ length: N }, () =>
        admin.createEscrow({ payer, payee, amount: '150.00', description: 'bench' }),
      ),
    );
    const held = await admin.listAllEscrows({ agent_id: payer, status: 'held' });
    if (held.length !== N) throw new Error(`expected ${N} held escrows, found ${held.length}`);
    wire.length = 0;
    sandbox.setFaults({ latencyMs: LATENCY_MS });

    const latencies: number[] = [];
    let failed = 0;
    const t0 = performance.now();
    const cancel = async (id: string) => {
      if (performance.now() - t0 > BUDGET_MS) return;
      const s = performance.now();
      try {
        await admin.cancelEscrow({ escrow_id: id });
        latencies.push(performance.now() - s);
      } catch {
        failed++;
      }
    };
    if (concurrency === 1) for (const e of held) await cancel(e.id);
    else await Promise.all(held.map((e) => cancel(e.id)));
    const wall = performance.now() - t0;
    sandbox.setFaults({ latencyMs: 0 });

    const left = sandbox.groundTruth(payer).held_escrows;
    if (N - left !== latencies.length)
      throw new Error(`${latencies.length} cancels reported, ${N - left} made`);
    latencies.sort((a, b) => a - b);
    wire.sort((a, b) => a - b);
    return {
      mode,
      concurrency: admin.concurrency,
      escrows: N,
      cancelled: latencies.length,
      failed,
      complete: latencies.length === N,
      wall_ms: Math.round(wall),
      cancels_per_s: Number(((latencies.length / wall) * 1000).toFixed(1)),
      p50_ms: Math.round(percentile(latencies, 50)),
      p95_ms: Math.round(percentile(latencies, 95)),
      p99_ms: Math.round(percentile(latencies, 99)),
      wire_p50_ms: Math.round(percentile(wire, 50)),
    };
  } finally {
    await admin.close();
    await sandbox.close();
  }
}

const rows = [await run('default concurrency', undefined), await run('one at a time', 1)];
const [fast, slow] = rows as [Row, Row];
console.log(
  `\ncancelling ${N} held escrows of 150.00 at ${LATENCY_MS} ms injected latency (sandbox on loopback, Node ${process.version})\n`,
);
console.table(rows);
console.log(
  `throughput ratio (default / one at a time): ${(fast.cancels_per_s / slow.cancels_per_s).toFixed(1)}×`,
);
console.log(
  'p50/p95/p99 are per call as the caller sees it, time queued behind the concurrency limit included;',
);
console.log('wire_p50_ms is the time per HTTP attempt alone.');
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/client.json', import.meta.url),
  `${JSON.stringify(
    {
      escrows: N,
      latency_ms: LATENCY_MS,
      budget_s: BUDGET_MS / 1000,
      node: process.version,
      at: new Date().toISOString(),
      rows,
    },
    null,
    2,
  )}\n`,
);
