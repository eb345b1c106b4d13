/**
 * The detection vocabulary: what one poll observes about an agent, what the detectors report, and the
 * per-agent state they carry between polls. Money is integer cents throughout; times are epoch ms.
 */

export type Signal =
  | 'cost_anomaly'
  | 'budget_warning'
  | 'budget_exhaustion'
  | 'reputation_drift'
  | 'escrow_burst'
  | 'escrow_exploitation'
  | 'identity_compromise'
  | 'cascade'
  | 'detection_failure';
export type Severity = 'info' | 'warning' | 'critical';
export type Priority = 'P0' | 'P1' | 'P2' | 'P3';

export const SIGNALS: readonly Signal[] = [
  'cost_anomaly',
  'budget_warning',
  'budget_exhaustion',
  'reputation_drift',
  'escrow_burst',
  'escrow_exploitation',
  'identity_compromise',
  'cascade',
  'detection_failure',
];
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/** One finding. `details` is the evidence: the numbers, ids, windows and thresholds that produced it. */
export interface Anomaly {
  agent_id: string;
  signal: Signal;
  severity: Severity;
  priority: Priority;
  /** When it was observed (the observation's `at`), epoch ms. */
  at: number;
  summary: string;
  details: Record<string, unknown>;
}

/** Escrow states on the real gateway (CONTRACT §8): `released` is never set, a cancel is `refunded`. */
export type EscrowStatus = 'held' | 'settled' | 'refunded' | 'expired';

/**
 * The money path an observation came from. Intents and subscriptions are judged by the escrow rules on
 * the escrow states they map to (see `PaymentObservation`); absent means an escrow.
 */
export type MoneyPath = 'escrow' | 'intent' | 'subscription' | 'split' | 'withdrawal';
export const MONEY_PATHS: readonly MoneyPath[] = ['escrow', 'intent', 'subscription', 'split', 'withdrawal'];
/** Paths whose money has left the wallet for good the moment the row exists: nothing to cancel or void. */
export const INSTANT_PATHS: ReadonlySet<MoneyPath> = new Set(['split', 'withdrawal']);

export interface EscrowObservation {
  id: string;
  /** Absent: an escrow. */
  path?: MoneyPath | undefined;
  payer: string;
  payee: string;
  /** Principal in cents. */
  amount: number;
  /** An unknown status is kept but counts as neither held nor decided. */
  status: EscrowStatus | (string & {});
  /** Epoch ms. */
  created_at: number;
  /** Kept when the list sends it; no signal depends on it (get_escrow rows carry none). */
  updated_at?: number | undefined;
}

/**
 * What one poll tells about one agent. A field is absent when it was not read; a read that failed is
 * listed in `failures` (the check name: `balance`, `budget`, `escrows`, `usage`, `reputation`,
 * `identity`), which makes the signals depending on it unevaluated rather than clear.
 */
export interface AgentObservation {
  agent_id: string;
  /** When the poll was made, epoch ms (the injected clock, never the detector's own). */
  at: number;
  /** Wallet balance in cents. */
  balance?: number | undefined;
  /** get_budget_status in cents; a cap of null or ≤ 0 means "no cap" (see budget.ts). */
  budget?:
    | {
        daily_spend: number;
        daily_cap: number | null;
        daily_pct: number;
        monthly_spend: number;
        monthly_cap: number | null;
      }
    | undefined;
  /**
   * The agent's most recent escrows as payer or payee, newest first as list_escrows returns them. The
   * page must be complete from its oldest entry to `at`: the detectors treat the time it spans as seen.
   */
  escrows?: EscrowObservation[] | undefined;
  /**
   * The agent's newest payment intents and subscriptions (list_intents, list_subscriptions), as payer or
   * payee, each mapped onto the escrow state that means the same for money: a pending intent is `held`
   * (committed, capturable at any moment), a captured or settled one `settled`, a voided one `refunded`;
   * an active or suspended subscription is `held` (money it will take every interval), a cancelled one
   * `refunded`. `amount` is the intent's, or one charge of the subscription. Plus the wallet's own
   * outflows no other list shows (get_transactions): splits (payee `(split)`), withdrawals (`(withdraw)`)
   * and conversions out of CREDITS (`(convert to X)`), each `settled`. With `path` set. Read on its own
   * cadence: absent when not read this poll, and the escrow list is then judged alone.
   */
  payments?: EscrowObservation[] | undefined;
  /**
   * get_usage_summary over the agent's whole history: gateway fees. `total_cost` is CREDITS as the
   * gateway reports it (a float), cumulative, so its deltas are exact fee spend.
   */
  usage?: { total_calls: number; total_cost: number } | undefined;
  /**
   * get_agent_reputation. On the real gateway the scores are usually all 0 ("never computed"). An agent
   * whose key was made directly has no reputation row at all (the gateway's 404 "Agent reputation not
   * found"): that is `no_record: true` with `found: false`, an answer, not a failed check.
   */
  reputation?:
    | {
        composite_score: number;
        payment_reliability?: number | undefined;
        found?: boolean | undefined;
        no_record?: boolean | undefined;
        [k: string]: unknown;
      }
    | undefined;
  /**
   * Latest values of quality metrics where higher is better (success_rate, accuracy, uptime…), e.g.
   * the `current` of get_metric_deltas. They drift like reputation does; other names are ignored.
   */
  metrics?: Record<string, number> | undefined;
  /**
   * The share of its own calls the agent reports failing, 0–1 (its ingested error_rate, or 1 − its
   * success_rate), when a metrics read this poll had one. Feeds the agent's circuit breaker.
   */
  error_rate?: number | undefined;
  /**
   * The registered identity: `public_key: null` when the record is missing; `verified: false` when a
   * challenge (verify_agent) failed for the registered key.
   */
  identity?: { public_key: string | null; verified?: boolean | undefined } | undefined;
  /**
   * Ids of this agent's escrows that our own containment cancelled or is cancelling (the store's
   * escrowIdsCancelledByUs), and of its intents we voided and subscriptions we cancelled (the money-path
   * ledger). Those are our doing, never the agent's: they feed no signal.
   */
  cancelled_by_us?: readonly string[] | undefined;
  failures: { check: string; code: string; message: string }[];
}

/** A fee delta measured between two polls, spread evenly over (from, to]. */
export interface FeeSample {
  from: number;
  to: number;
  cents: number;
}

/** A drifting score's baseline (reputation or a quality metric). */
export interface ScoreBaseline {
  baseline: number;
  /** When the baseline last moved, epoch ms. */
  at: number;
  n: number;
}

/**
 * Per-agent detector state, JSON-serializable and bounded: two series of at most `baseline_intervals`
 * numbers, at most `MAX_FEE_SAMPLES` fee samples and one baseline per known quality metric.
 */
export interface AgentDetectionState {
  v: 2;
  /** The last observation's time. */
  last_at: number | null;
  /**
   * The last `baseline_intervals` closed, non-overlapping intervals of `spend_window_ms`, oldest first,
   * learned from the escrow list (so the first poll can seed them from history): spend in cents and
   * escrows created as payer. Judged by median and MAD (baseline.ts).
   */
  intervals: {
    spend: number[];
    count: number[];
    /** End of the last interval learned; null before the first observation. */
    learned_until: number | null;
    /**
     * Per interval, aligned with `count`: the largest retry-shaped group (groups.ts largestRepeat) and the
     * most escrows to one payee. Together with `count` they give the agent's own peaks, which the rate
     * rules are judged against: a batch buyer's batches and a payout run raise its own bar, not a quiet
     * agent's. Optional in stored state (older states lack them; they refill as intervals are learned).
     */
    repeat?: number[];
    payee?: number[];
    /** The largest escrow (cents) created in the interval: the agent's own range of sizes. */
    amount?: number[];
    /** 1 for intervals learned by a poll that alarmed: an incident never becomes the agent's own peak. */
    flagged?: number[];
  };
  /**
   * Peaks remembered past the 24 h of intervals (a weekly payout run): the value and when it was seen.
   * Expire after `peak_memory_ms`.
   */
  peaks?: Partial<Record<PeakName, { v: number; at: number }>>;
  /** Spans judged by recent critical alarms: intervals overlapping them are never learned as peaks. */
  alarms?: [number, number][];
  /** Payees this agent has paid, most recent last, at most MAX_KNOWN_PAYEES. */
  payees?: string[];
  /** The earliest escrow creation time or poll seen: how much of this agent's history is known. */
  known_since?: number | null;
  /** The last error rate the agent reported (AgentObservation.error_rate) and when it was read. */
  agent_errors?: { rate: number; at: number } | null;
  /** Decided escrows of closed hours, decayed: the agent's own cancellation rate. */
  cancels?: { decided: number; cancelled: number; learned_until: number | null };
  /** EWMA of escrow amounts as payer in intervals the baseline called normal: the typical escrow. */
  escrow_amount: { n: number; mean: number };
  fees: {
    /** The last cumulative fee reading and where it came from. */
    ref: { at: number; total_cents: number; source: 'usage' | 'budget' } | null;
    samples: FeeSample[];
  };
  reputation: ScoreBaseline | null;
  metrics: Record<string, ScoreBaseline>;
}

export const MAX_FEE_SAMPLES = 64;
export const MAX_KNOWN_PAYEES = 2_000;
export const MAX_ALARM_SPANS = 32;
export type PeakName = 'count' | 'repeat' | 'payee' | 'spend' | 'amount';
