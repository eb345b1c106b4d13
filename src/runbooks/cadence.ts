/**
 * What the watcher reads about each agent, and when: the poll cadence per agent.
 *
 * Reads come in two tiers. The escrow list (spend, burst, exploitation) and the budget status are read at
 * every poll; balance, usage, reputation, identity and metric deltas on a longer per-agent cadence,
 * staggered by a hash of the agent id so a fleet's slow reads spread over the cadence instead of landing
 * in one pass. Identity is read at least every `identityIntervalMs` (≤ 2 min): identity_compromise is P0.
 *
 * The escrow page adapts. The detectors need it complete from its oldest entry back over their widest
 * window (`coverMs`); a quiet agent's page is sized from the entries its last page had in that window plus
 * headroom, an agent whose escrows are rising gets the full page, and the caller re-reads at the full size
 * when a small page came back full without reaching back over the window.
 *
 * The schedule adapts too: an agent whose escrow velocity rises (new escrows as payer since the last poll
 * above its usual rate, or its held escrows growing) is polled again after `minIntervalMs`, and relaxes
 * back (the interval doubles per quiet poll) to its base interval: the configured one, or the tighter one
 * of an agent in recovery. Between polls a probe (one small list_escrows) looks for new escrows, so a loop
 * starting just after a poll is seen within one probe interval instead of one poll interval.
 *
 * Intents, subscriptions and wallet outflows (`payments`: three reads) are read on the identity cadence
 * (≤ 2 min) while the agent makes none, and at every poll once it has made one as payer within the last
 * hour: a fleet that never uses those paths pays one read of each per 2 min, and an agent that does is
 * judged on them as closely as on its escrows. The budget status, read at every poll, tells sooner: fee
 * spend rising by more than the new escrows' fees explain means fee-bearing calls on another path (an
 * intent or a split), and the agent is polled again at the floor with its payments read.
 *
 * Memory is per process and starts empty: after a restart every agent gets the full page, and its slow
 * reads spread over their cadence from there.
 */
import type { EscrowObservation, Thresholds } from '../detection/index.js';

export const SLOW_CHECKS = ['balance', 'usage', 'reputation', 'identity', 'metrics', 'payments'] as const;
export type SlowCheck = (typeof SLOW_CHECKS)[number];

/** The largest escrow page a poll reads (the page size before pages adapted). */
export const MAX_ESCROW_PAGE = 200;
/** The smallest page a quiet agent gets. */
export const MIN_ESCROW_PAGE = 10;
/** Entries a quiet page holds beyond what the last page had in the window: new escrows since then. */
const PAGE_HEADROOM = 5;
/** A probe only needs to see whether anything is newer than the newest escrow already seen. */
export const PROBE_PAGE = 5;
/** The usual escrow rate is an average over about this long. */
const USUAL_RATE_MEMORY_MS = 60 * 60_000;

export interface CadenceOptions {
  /** The configured poll interval (watch.intervalMs). */
  intervalMs: number;
  /** The tightest interval an agent whose escrows are rising is polled at. */
  minIntervalMs: number;
  /** How often a probe looks for new escrows between polls (no probe when ≥ the agent's interval). */
  probeIntervalMs: number;
  /** Cadence of balance, usage, reputation and metric deltas. */
  slowReadIntervalMs: number;
  /** Cadence of the identity read (at most 2 min), and of the payments read while the agent makes none. */
  identityIntervalMs: number;
}

export interface ReadPlan {
  /** Slow checks to read at this poll. */
  slow: ReadonlySet<SlowCheck>;
  /** list_escrows limit for the first read. */
  escrowLimit: number;
  /** How far back the page must reach to be complete for the detectors, ms. */
  coverMs: number;
  /**
   * First sight of an agent: page back this far (up to HISTORY_MAX_ESCROWS) so its baseline and peaks start
   * from the history the gateway already has, not from one page (a busy agent's page covers minutes).
   */
  historyMs?: number;
}

/** What a poll or a probe learnt from an agent's escrow list. */
export interface EscrowSighting {
  /** Escrows newer than the newest one seen before, as payer. */
  newAsPayer: number;
  /** The gateway fees those escrows cost, cents (create_escrow: 1.5 %, at least 1 cent, at most 10 CREDITS). */
  newFees: number;
  /** Growth of held escrows as payer within the cover window since the last poll (0 when unknown). */
  heldGrowth: number;
  /** The new escrows as payer are above the agent's usual rate. */
  rising: boolean;
}

interface AgentMemory {
  /** An escrow page has been read: from then on, anything newer than `newestId` is new. */
  pageSeen: boolean;
  /** Null when the agent had no escrows at all. */
  newestId: string | null;
  newestAt: number;
  /** Held escrows as payer created within the cover window, on the last page. */
  held: number;
  /** Page entries (either side) created within the cover window, on the last page. */
  inWindow: number;
  lastPollAt: number | null;
  /** Escrows created as payer per ms, learnt on polls that were not rising; null before the first page. */
  usualPerMs: number | null;
  rising: boolean;
  intervalMs: number;
  nextPollAt: number;
  nextProbeAt: number;
  slowDueAt: Record<SlowCheck, number>;
  /** The agent made an intent or subscription as payer within the last hour (last payments read). */
  paymentsActive: boolean;
  /** Fee spend rose beyond what its new escrows explain: read payments at the next poll. */
  paymentsNow: boolean;
  /** The budget's daily fee spend at the last poll, cents. */
  dailySpend: number | null;
}

/** Unexplained fee spend below this (plus a cent per new escrow) is rounding or flat-priced calls. */
const FEE_SLACK_CENTS = 5;

/** create_escrow's gateway fee for an escrow of `cents`: 1.5 %, at least 0.01, at most 10 CREDITS. */
const escrowFeeCents = (cents: number) =>
  cents > 0 ? Math.min(1_000, Math.max(1, Math.round(cents * 0.015))) : 0;

/** Widest window the escrow detectors judge, plus the gap since the last poll the baseline catches up over. */
export function escrowCoverMs(t: Thresholds, sinceLastPollMs = 0): number {
  return Math.max(
    t.escrow_burst_window_ms,
    t.escrow_burst_long_window_ms,
    t.exploitation_window_ms,
    t.cancel_window_ms,
    // The baseline learns closed intervals up to one spend window back; after a gap, over the gap too.
    sinceLastPollMs + 2 * t.spend_window_ms,
  );
}

/** Whether a page read with `limit` is complete back to `at - coverMs` (or holds the agent's whole history). */
export function pageComplete(
  page: readonly Pick<EscrowObservation, 'created_at'>[],
  limit: number,
  at: number,
  coverMs: number,
): boolean {
  if (page.length < limit) return true;
  const oldest = page.reduce((m, e) => Math.min(m, e.created_at), Number.POSITIVE_INFINITY);
  return oldest <= at - coverMs;
}

/** A stable offset in [0, span) for an agent and check, so slow reads spread over their cadence. */
export function phaseOf(key: string, span: number): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % Math.max(1, Math.floor(span));
}

export class PollCadence {
  private readonly agents = new Map<string, AgentMemory>();

  constructor(readonly options: CadenceOptions) {
    if (options.identityIntervalMs > 120_000)
      throw new RangeError('identityIntervalMs: identity_compromise is P0, read it at least every 2 min');
  }

  private memory(agentId: string, now: number): AgentMemory {
    let m = this.agents.get(agentId);
    if (!m) {
      const o = this.options;
      const slowDueAt = {} as Record<SlowCheck, number>;
      for (const c of SLOW_CHECKS) slowDueAt[c] = now + phaseOf(`${agentId}\u0000${c}`, this.every(c));
      m = {
        pageSeen: false,
        newestId: null,
        newestAt: Number.NEGATIVE_INFINITY,
        held: 0,
        inWindow: 0,
        lastPollAt: null,
        usualPerMs: null,
        rising: false,
        intervalMs: o.intervalMs,
        nextPollAt: 0,
        nextProbeAt: 0,
        slowDueAt,
        paymentsActive: false,
        paymentsNow: false,
        dailySpend: null,
      };
      this.agents.set(agentId, m);
    }
    return m;
  }

  /**
   * What to read about `agentId` at a poll at `now`. `full` reads everything at the full page (first
   * sight of the fleet by hand, the detect tool). A slow check is read when it falls due before the next
   * poll could, so its gap never exceeds its cadence while polls keep their schedule.
   */
  plan(agentId: string, now: number, t: Thresholds, baseIntervalMs: number, full = false): ReadPlan {
    const m = this.memory(agentId, now);
    const coverMs = escrowCoverMs(t, m.lastPollAt === null ? 0 : now - m.lastPollAt);
    if (full) return { slow: new Set(SLOW_CHECKS), escrowLimit: MAX_ESCROW_PAGE, coverMs };
    // The next poll comes at most one base interval later (the schedule never sets a longer one).
    const slow = new Set(
      SLOW_CHECKS.filter(
        (c) =>
          m.slowDueAt[c] <= now + baseIntervalMs || (c === 'payments' && (m.paymentsActive || m.paymentsNow)),
      ),
    );
    const escrowLimit =
      m.lastPollAt === null || m.rising
        ? MAX_ESCROW_PAGE
        : Math.min(MAX_ESCROW_PAGE, Math.max(MIN_ESCROW_PAGE, m.inWindow + PAGE_HEADROOM));
    return { slow, escrowLimit, coverMs };
  }

  /**
   * Records a poll's reads: the escrow page (when read), which slow checks answered, and when. Returns
   * what the page showed about escrow velocity. A slow check that failed stays due (the next poll retries).
   */
  observed(
    agentId: string,
    at: number,
    read: {
      escrows?: readonly EscrowObservation[] | undefined;
      /** The intents and subscriptions read this poll, when read. */
      payments?: readonly EscrowObservation[] | undefined;
      /** The budget's daily fee spend this poll, cents, when read. */
      dailySpend?: number | undefined;
      coverMs: number;
      slowRead: Iterable<SlowCheck>;
    },
  ): EscrowSighting | undefined {
    const m = this.memory(agentId, at);
    for (const c of read.slowRead) m.slowDueAt[c] = at + this.every(c);
    if (read.payments) {
      m.paymentsActive = read.payments.some(
        (e) => e.payer === agentId && e.created_at > at - USUAL_RATE_MEMORY_MS,
      );
      m.paymentsNow = false;
    }
    if (!read.escrows) return undefined;
    const page = read.escrows;
    const sighting = this.sight(agentId, m, at, page);
    // Fees the new escrows explain, against the rise of the daily fee spend: more means fee-bearing calls
    // on a path the escrow list does not show. (Fees leaving the rolling day only hide a rise.) The gateway
    // sums unrounded fees, so each escrow may differ from our estimate by under a cent, and a few cents
    // of flat-priced calls are no payment path.
    if (read.dailySpend !== undefined) {
      const rise = m.dailySpend === null ? 0 : read.dailySpend - m.dailySpend;
      const slack = FEE_SLACK_CENTS + sighting.newAsPayer;
      if (m.pageSeen && rise > sighting.newFees + slack && !read.payments) {
        m.paymentsNow = true;
        sighting.rising = true;
      }
      m.dailySpend = read.dailySpend;
    }
    const since = at - read.coverMs;
    const held = page.filter(
      (e) => e.payer === agentId && e.status === 'held' && e.created_at > since,
    ).length;
    const heldGrowth = m.lastPollAt === null ? 0 : Math.max(0, held - m.held);
    const expected = this.expected(m, at);
    sighting.heldGrowth = heldGrowth;
    sighting.rising = sighting.rising || (heldGrowth >= 1 && heldGrowth > 2 * expected);
    if (m.usualPerMs === null) {
      // First page: the usual rate is what the last hour of it shows.
      const hour = page.filter((e) => e.payer === agentId && e.created_at > at - USUAL_RATE_MEMORY_MS);
      m.usualPerMs = hour.length / USUAL_RATE_MEMORY_MS;
    } else if (!sighting.rising && m.lastPollAt !== null && at > m.lastPollAt) {
      // Learnt only from polls that were not rising: a loop must not become the agent's usual.
      const gap = at - m.lastPollAt;
      const w = Math.min(1, gap / USUAL_RATE_MEMORY_MS);
      m.usualPerMs += w * (sighting.newAsPayer / gap - m.usualPerMs);
    }
    m.held = held;
    m.inWindow = page.filter((e) => e.created_at > since).length;
    m.rising = sighting.rising;
    m.lastPollAt = at;
    m.nextProbeAt = at + this.options.probeIntervalMs;
    return sighting;
  }

  /** Records a probe's page (newest first). A rising probe makes the agent due at once. */
  probed(agentId: string, at: number, page: readonly EscrowObservation[]): EscrowSighting {
    const m = this.memory(agentId, at);
    const sighting = this.sight(agentId, m, at, page, false);
    m.nextProbeAt = at + this.options.probeIntervalMs;
    if (sighting.rising) m.nextPollAt = Math.min(m.nextPollAt, at);
    return sighting;
  }

  /** Sets the agent's next poll after a poll at `now`: the floor while rising, relaxing to `baseIntervalMs`. */
  scheduled(agentId: string, now: number, baseIntervalMs: number): number {
    const m = this.memory(agentId, now);
    const floor = Math.min(this.options.minIntervalMs, baseIntervalMs);
    m.intervalMs = m.rising ? floor : Math.min(baseIntervalMs, Math.max(floor, m.intervalMs * 2));
    m.nextPollAt = now + m.intervalMs;
    return m.nextPollAt;
  }

  /**
   * Forgets every agent not in `agentIds` (another replica polls them now): one that comes back is new again,
   * due at once.
   */
  retain(agentIds: readonly string[]): void {
    if (this.agents.size <= agentIds.length && agentIds.every((a) => this.agents.has(a))) return;
    const keep = new Set(agentIds);
    for (const a of this.agents.keys()) if (!keep.has(a)) this.agents.delete(a);
  }

  /** Agents due for a poll at `now` (never polled counts as due). */
  due(agentIds: readonly string[], now: number): string[] {
    return agentIds.filter((a) => (this.agents.get(a)?.nextPollAt ?? 0) <= now);
  }

  /** Agents due for a probe: polled before, not due for a poll, probe time reached, probe sooner than the poll. */
  probeDue(agentIds: readonly string[], now: number): string[] {
    return agentIds.filter((a) => {
      const m = this.agents.get(a);
      return (
        m?.pageSeen === true && m.nextPollAt > now && m.nextProbeAt <= now && m.nextProbeAt < m.nextPollAt
      );
    });
  }

  /** The earliest time any known agent needs a poll or a probe (for the loop timer); null when none known. */
  nextWakeAt(): number | null {
    let t: number | null = null;
    for (const m of this.agents.values()) {
      const probe = m.pageSeen && m.nextProbeAt < m.nextPollAt ? m.nextProbeAt : m.nextPollAt;
      const next = Math.min(m.nextPollAt, probe);
      if (t === null || next < t) t = next;
    }
    return t;
  }

  /** Makes an agent due at once (an event or webhook named it). */
  wake(agentId: string): void {
    const m = this.agents.get(agentId);
    if (m) m.nextPollAt = 0;
  }

  /** The agent's current poll interval, ms (the configured one for an agent never seen). */
  intervalOf(agentId: string): number {
    return this.agents.get(agentId)?.intervalMs ?? this.options.intervalMs;
  }

  private every(c: SlowCheck): number {
    return c === 'identity' || c === 'payments'
      ? this.options.identityIntervalMs
      : this.options.slowReadIntervalMs;
  }

  private expected(m: AgentMemory, at: number): number {
    if (m.usualPerMs === null || m.lastPollAt === null) return 0;
    return m.usualPerMs * Math.max(0, at - m.lastPollAt);
  }

  /** New escrows as payer since the newest one remembered; moves the remembered newest when `remember`. */
  private sight(
    agentId: string,
    m: AgentMemory,
    at: number,
    page: readonly EscrowObservation[],
    remember = true,
  ): EscrowSighting {
    let newAsPayer = 0;
    let newFees = 0;
    if (m.pageSeen) {
      for (const e of page) {
        if (e.id === m.newestId || e.created_at < m.newestAt) break;
        if (e.payer === agentId) {
          newAsPayer++;
          newFees += escrowFeeCents(e.amount);
        }
      }
    }
    const expected = this.expected(m, at);
    const rising = m.pageSeen && newAsPayer >= 1 && newAsPayer > 2 * expected;
    const newest = page[0];
    if (remember) m.pageSeen = true;
    if (remember && newest) {
      m.newestId = newest.id;
      m.newestAt = newest.created_at;
    }
    return { newAsPayer, newFees, heldGrowth: 0, rising };
  }
}
