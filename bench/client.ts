/**
 * Client throughput and latency: cancelling N held escrows with the GreenHelix client at its default
 * concurrency versus one at a time, at 200 ms injected latency. Prints a table and writes
 * bench/results/client.json.
 *
 *   npx tsx bench/client.ts [--escrows 312] [--latency-ms 200]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GreenHelixClient } from '../src/greenhelix/index.js';
import { startSandbox } from '../src/sandbox/index.js';

const { values } = parseArgs({ options: { escrows: { type: 'string' }, 'latency-ms': { type: 'string' } } });
const N = Number(values.escrows ?? 312);
const LATENCY = Number(values['latency-ms'] ?? 200);
const DEFAULT_CONCURRENCY = 64;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function run(concurrency: number) {
  const sandbox = await startSandbox({ agents: 2, seed: 5, timeScale: 0, autoStartTraffic: false });
  const agent = sandbox.fleet[0]!;
  // N held escrows of $150, made by a loop at N per minute for one simulated minute.
  const scenario = sandbox.startScenario('runaway_spending', agent, { rate_per_min: N, amount: 150 });
  await sandbox.advance(60_000);
  sandbox.stopScenario(scenario);
  const admin = new GreenHelixClient({ baseUrl: sandbox.url, apiKey: sandbox.keys.containment, concurrency });
  const held = await admin.listAllEscrows({ agent_id: agent, status: 'held' });
  sandbox.setFaults({ latencyMs: LATENCY });
  const latencies: number[] = [];
  const t0 = performance.now();
  const cancel = async (e: { id: string }) => {
    const s = performance.now();
    await admin.cancelEscrow({ escrow_id: e.id });
    latencies.push(performance.now() - s);
  };
  // One at a time is a plain loop (queueing 312 calls behind a limit of 1 would spend their deadlines waiting).
  if (concurrency === 1) for (const e of held) await cancel(e);
  else await Promise.all(held.map(cancel));
  const wall = performance.now() - t0;
  const left = sandbox.groundTruth(agent).held_escrows;
  await admin.close();
  await sandbox.close();
  if (left !== 0) throw new Error(`${left} escrows still held`);
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    escrows: held.length,
    wall_ms: Math.round(wall),
    cancels_per_s: +((held.length / wall) * 1000).toFixed(1),
    p50_ms: Math.round(pct(latencies, 50)),
    p95_ms: Math.round(pct(latencies, 95)),
    p99_ms: Math.round(pct(latencies, 99)),
  };
}

const rows = [await run(DEFAULT_CONCURRENCY), await run(1)];
console.log(
  `\ncancelling ${N} held escrows at ${LATENCY} ms injected latency (sandbox on loopback, Node ${process.version})\n`,
);
console.table(rows);
console.log(`speed-up at the default concurrency: ${(rows[1]!.wall_ms / rows[0]!.wall_ms).toFixed(1)}×`);
console.log('latency per call includes time queued behind the concurrency limit.');
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/client.json', import.meta.url),
  `${JSON.stringify({ latency_ms: LATENCY, node: process.version, at: new Date().toISOString(), rows }, null, 2)}\n`,
);
