/**
 * An agent's runaway loop, driven through the agent's own key against the real gateway: `creators`
 * concurrent loops each creating escrows until stopped (or until `limit` in total), counting successes
 * and refusals by channel, status and error. A refused create is retried after a short pause, as a loop
 * does. Each creator uses one channel: REST (`POST /v1/payments/escrows`, where budget caps bind) or
 * `POST /v1/batch` (how the provider's own MCP servers call tools: no cap check, CONTRACT §1).
 */
import { rest } from './fleet.js';

export type Channel = 'rest' | 'batch';

export interface LoadReport {
  created: number;
  createdIds: string[];
  createdBy: Record<Channel, number>;
  refused: Record<string, number>;
}

export interface EscrowLoad {
  /** Escrows created so far. */
  created(): number;
  /** Resolves once at least `n` escrows were created (or rejects when every creator has stopped). */
  reached(n: number): Promise<void>;
  stop(): Promise<LoadReport>;
}

export function startEscrowLoad(opts: {
  url: string;
  key: string;
  payer: string;
  payee: string;
  amount: string;
  creators: number;
  /** Creator i uses channels[i % channels.length]; default REST only. */
  channels?: Channel[];
  /** Escrows per `/v1/batch` request (at most 10); default 1. */
  batchSize?: number;
  limit?: number;
  /** A creator gives up after this many refusals in a row (a loop that can no longer create). */
  maxConsecutiveRefusals?: number;
  /** `reached` rejects when its count is not reached within this many ms. */
  reachWithinMs?: number;
}): EscrowLoad {
  let stopping = false;
  const createdIds: string[] = [];
  const createdBy: Record<Channel, number> = { rest: 0, batch: 0 };
  const refused: Record<string, number> = {};
  const waiters: { n: number; resolve: () => void }[] = [];
  const wake = () => {
    for (const w of [...waiters])
      if (createdIds.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
  };
  const body = { payer: opts.payer, payee: opts.payee, amount: opts.amount, description: 'order retry' };
  /** One request: the new escrows' ids and the refusals, each as "channel status code". */
  const createOnce = async (channel: Channel): Promise<{ ids: string[]; refusals: string[] }> => {
    if (channel === 'rest') {
      const r = await rest(opts.url, 'POST', '/v1/payments/escrows', { key: opts.key, body });
      if (r.status === 201) return { ids: [(r.body as { id: string }).id], refusals: [] };
      const type = String((r.body as { type?: string } | null)?.type ?? '').replace(/^.*\/errors\//, '');
      return { ids: [], refusals: [`rest ${r.status} ${type}`] };
    }
    // Batch checks no types and hands params to the engine raw: the amount must be a JSON number there.
    const call = { tool: 'create_escrow', params: { ...body, amount: Number(opts.amount) } };
    const r = await rest(opts.url, 'POST', '/v1/batch', {
      key: opts.key,
      body: { calls: Array.from({ length: opts.batchSize ?? 1 }, () => call) },
    });
    type Result = { success: boolean; result?: { id: string }; error?: { code: string } };
    const results = (r.body as { results?: Result[] } | null)?.results;
    if (r.status !== 200 || !results) return { ids: [], refusals: [`batch ${r.status}`] };
    return {
      ids: results.flatMap((x) => (x.success && x.result ? [x.result.id] : [])),
      refusals: results.flatMap((x) => (x.success ? [] : [`batch 200 ${x.error?.code ?? ''}`])),
    };
  };
  const creator = async (channel: Channel) => {
    let refusedInARow = 0;
    while (!stopping && (opts.limit === undefined || createdIds.length < opts.limit)) {
      if (refusedInARow >= (opts.maxConsecutiveRefusals ?? Number.POSITIVE_INFINITY)) return;
      let pause = 0;
      try {
        const r = await createOnce(channel);
        createdIds.push(...r.ids);
        createdBy[channel] += r.ids.length;
        for (const k of r.refusals) refused[k] = (refused[k] ?? 0) + 1;
        if (r.ids.length) {
          refusedInARow = 0;
          wake();
        } else {
          refusedInARow++;
          pause = 25;
        }
      } catch (e) {
        refusedInARow++;
        const k = `${channel} network ${(e as Error).name}`;
        refused[k] = (refused[k] ?? 0) + 1;
        pause = 50;
      }
      if (pause) await new Promise((r) => setTimeout(r, pause));
    }
  };
  const channels = opts.channels ?? ['rest'];
  const all = Promise.all(
    Array.from({ length: opts.creators }, (_, i) => creator(channels[i % channels.length]!)),
  );
  let done = false;
  void all.then(() => {
    done = true;
  });
  return {
    created: () => createdIds.length,
    reached: (n) =>
      new Promise<void>((resolve, reject) => {
        const fail = (why: string) =>
          reject(
            new Error(`the load ${why} at ${createdIds.length} of ${n} escrows: ${JSON.stringify(refused)}`),
          );
        if (createdIds.length >= n) return resolve();
        if (done) return fail('had stopped');
        const timer = setTimeout(() => fail('timed out'), opts.reachWithinMs ?? 120_000);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void all.then(() => {
          clearTimeout(timer);
          if (createdIds.length < n) fail('stopped');
        });
      }),
    stop: async () => {
      stopping = true;
      await all;
      return {
        created: createdIds.length,
        createdIds: [...createdIds],
        createdBy: { ...createdBy },
        refused: { ...refused },
      };
    },
  };
}
