/**
 * One side of a claimContainment race (test/incidents/engines.test.ts): opens its own store on the shared
 * place, waits at the gate until every side is ready, then claims the same agent `rounds` times as fast as
 * it can. Posts the ids of the incidents it created.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../../src/incidents/index.js';

const { databaseUrl, dataDir, agent, rounds, gate, sides } = workerData as {
  databaseUrl?: string;
  dataDir?: string;
  agent: string;
  rounds: number;
  gate: Int32Array;
  sides: number;
};
const store = openStore({ databaseUrl, dataDir, clock: { now: () => Date.now() } });
Atomics.add(gate, 0, 1);
Atomics.notify(gate, 0);
for (let n = Atomics.load(gate, 0); n < sides; n = Atomics.load(gate, 0)) Atomics.wait(gate, 0, n, 100);
const created: string[] = [];
for (let i = 0; i < rounds; i++) {
  const c = store.claimContainment(agent, {
    agent_ids: [agent],
    primary_agent_id: agent,
    reason: `race ${i}`,
    kind: 'containment',
  });
  if (c.created) created.push(c.incident.id);
}
store.close();
parentPort?.postMessage(created);
