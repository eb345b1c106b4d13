/**
 * The acting gate: what every state-changing path asks before it acts (the tool seam for contain_agent,
 * recover_agent and run_runbook; fleet_shutdown; the watcher). One blast-radius policy, one approval book.
 *
 * Within the limit (default 3 distinct agents, or 10 % of the fleet, per call and per 10 min) an action
 * goes ahead and is counted. Beyond it, or for any fleet shutdown, it needs an operator's approval on the
 * loopback approval page: the request is opened once, the operator is told where (log, alert webhook, and
 * URL elicitation where the host supports it), and the caller only learns "pending" and the digest. The
 * same call made again finds the decision: approved (once), rejected, pending or expired.
 */
import { formatCents } from '../greenhelix/money.js';
import {
  type ActionSpec,
  type Approval,
  ApprovalBook,
  type ApprovalPage,
  BlastRadiusPolicy,
  buildElicitation,
  checkElicitationResponse,
  describeExcess,
} from '../guards/index.js';
import { ToolError } from '../util/errors.js';
import type { Alert } from './alerts.js';
import type { OpsDeps } from './deps.js';
import { mapBounded } from './limit.js';

/**
 * The signal of the operator's "approval needed" page. It is about this server, not about an agent, so
 * detection never counts it as an agent alerting (two requests would otherwise look like a cascade).
 */
export const APPROVAL_REQUESTED = 'approval_requested';

/** The watcher's requester id: exempt from the global queue limit, so its pages are never crowded out. */
export const WATCHER = 'watcher';

export interface ActingRequest {
  /** Which path acts: a tool name, `run_runbook:<name>`, `watcher:<runbook>`, `fleet_shutdown`. */
  tool: string;
  agent_ids: readonly string[];
  params?: Record<string, string | number | boolean | null | undefined> | undefined;
  reason: string;
  /** Who asks: one MCP session, or the watcher. Approvals are never shared between requesters. */
  requester: string;
  /** Fleet shutdown: approval whatever the count. */
  alwaysApprove?: boolean | undefined;
  /** Tells the person at the host where to approve (URL elicitation); never the model. */
  announce?: ((approval: Approval, url: string) => void) | undefined;
  /** Form elicitation, only where configured (guards.formElicitation). */
  formElicit?:
    | ((
        message: string,
        schema: Record<string, unknown>,
      ) => Promise<{ action: string; content?: Record<string, unknown> }>)
    | undefined;
  signal?: AbortSignal | undefined;
}

export type Admission =
  | { status: 'admitted'; approval: Approval | null }
  | { status: 'pending' | 'rejected' | 'expired'; approval: Approval; created: boolean };

export interface ActingGateOptions {
  deps: OpsDeps;
  page: (alert: Alert) => Promise<void>;
}

export class ActingGate {
  readonly policy: BlastRadiusPolicy;
  readonly book: ApprovalBook;
  #page: ApprovalPage | null = null;
  readonly #deps: OpsDeps;
  readonly #alert: (alert: Alert) => Promise<void>;

  constructor(opts: ActingGateOptions) {
    const { config, clock } = opts.deps;
    this.#deps = opts.deps;
    this.#alert = opts.page;
    this.policy = new BlastRadiusPolicy({
      clock,
      maxAgents: config.guards.maxAgentsPerCall,
      maxFleetShare: config.guards.maxFleetShare,
      windowMs: config.guards.windowMs,
    });
    this.book = new ApprovalBook({
      clock,
      ttlMs: config.guards.confirmationTtlMs,
      maxPendingPerRequester: config.guards.maxPendingPerRequester,
      reserved: [WATCHER],
    });
  }

  /** The approval page, once started (app.ts starts it when an operator secret is configured). */
  attachPage(page: ApprovalPage): void {
    this.#page = page;
  }

  get pageUrl(): string | null {
    return this.#page?.url ?? null;
  }

  /**
   * The agents this server may act on: the configured fleet, less shared wallets. Without INCIDENT_FLEET
   * there are none: the monitor key's list also holds counterparties and treasuries.
   */
  actingFleet(): string[] {
    const { fleet, sharedWallets } = this.#deps.config;
    if (!fleet)
      throw new ToolError(
        'fleet_not_configured',
        'No fleet is configured, so this server acts on no agent (it only watches). The agents the monitor key lists include counterparties and shared wallets.',
        false,
        'Set INCIDENT_FLEET to the comma-separated ids of your own agents (and INCIDENT_SHARED_WALLETS to shared wallets).',
      );
    const shared = new Set(sharedWallets);
    return fleet.filter((a) => !shared.has(a));
  }

  /** Whether an approval can be given at all: the page is up, or form elicitation is configured. */
  canApprove(formElicit: boolean): boolean {
    return this.#page !== null || (formElicit && this.#deps.config.guards.formElicitation);
  }

  /**
   * Checks an action against the blast radius and, beyond it, against the operator's decision. Admitted
   * actions are counted in the window. Throws a ToolError only when no approval is possible at all.
   */
  async admit(req: ActingRequest): Promise<Admission> {
    const agents = [...new Set(req.agent_ids)];
    const fleetSize = this.actingFleet().length;
    if (!req.alwaysApprove) {
      const verdict = this.policy.admit(agents, fleetSize);
      if (verdict.ok) return { status: 'admitted', approval: null };
    }
    const spec = { tool: req.tool, agent_ids: agents, params: clean(req.params) };
    const found = this.book.lookup(spec, req.requester);
    if (found.status === 'approved') {
      this.policy.record(agents);
      return { status: 'admitted', approval: found.approval };
    }
    if (found.status !== 'none') return { status: found.status, approval: found.approval, created: false };
    const why = this.#why(req, agents, fleetSize);
    const opened = await this.open({ ...req, agent_ids: agents }, why);
    if (opened.status === 'admitted') this.policy.record(agents);
    return opened;
  }

  /**
   * Opens an approval request and tells the operator. Used by `admit` and by the watcher, which asks
   * for what it may not do alone. With form elicitation configured, the person at the host may approve
   * there instead.
   */
  async open(req: ActingRequest, why: string): Promise<Admission> {
    if (!this.canApprove(Boolean(req.formElicit)))
      throw new ToolError(
        'approval_unavailable',
        `${why} No operator can approve it: the approval page is off.`,
        false,
        'Set INCIDENT_OPERATOR_SECRET (at least 16 characters, not the HTTP token) to serve the approval page on 127.0.0.1, then call again.',
      );
    const atRisk = await this.#atRiskCents(req.agent_ids, req.signal);
    const opened = this.book.request(
      {
        tool: req.tool,
        agent_ids: req.agent_ids,
        params: clean(req.params),
        reason: req.reason,
        at_risk_cents: atRisk,
        why,
      } satisfies ActionSpec,
      req.requester,
    );
    if (!opened.ok) throw new ToolError(opened.code, opened.message, true, opened.fix);
    const approval = opened.approval;
    const url = this.#page?.urlFor(approval.id) ?? null;
    await this.#tellOperator(approval, url);
    if (url) req.announce?.(approval, url);
    if (req.formElicit && this.#deps.config.guards.formElicitation) {
      const decided = await this.#askByForm(approval, req.formElicit);
      if (decided) return decided;
    }
    return { status: 'pending', approval, created: true };
  }

  async #askByForm(
    approval: Approval,
    elicit: NonNullable<ActingRequest['formElicit']>,
  ): Promise<Admission | null> {
    const { message, requestedSchema } = buildElicitation({
      agent_ids: approval.agent_ids,
      reason: approval.reason,
    });
    const answer = await elicit(
      `${message} Action ${approval.tool}, digest ${approval.digest}, ${atRiskText(approval.at_risk_cents)} at risk.`,
      requestedSchema as unknown as Record<string, unknown>,
    ).catch(() => ({ action: 'cancel' }));
    const check = checkElicitationResponse(answer, approval.agent_count);
    const decided = this.book.decide(
      approval.id,
      check.ok ? 'approve' : 'reject',
      approval.full_digest,
      'person at the MCP host (form elicitation)',
    );
    if (!decided.ok) return null;
    if (!check.ok) return { status: 'rejected', approval: decided.approval, created: true };
    const taken = this.book.take(approval.id);
    return taken ? { status: 'admitted', approval: taken } : null;
  }

  #why(req: ActingRequest, agents: string[], fleetSize: number): string {
    if (req.alwaysApprove)
      return `A fleet shutdown (${agents.length} agents) always needs an operator's approval.`;
    const excess = this.policy.check(agents, fleetSize);
    return excess.ok
      ? `Acting on ${agents.length} agents needs an operator's approval.`
      : describeExcess(excess);
  }

  async #tellOperator(a: Approval, url: string | null): Promise<void> {
    const where = url ? `Approve or reject at ${url}` : 'Approve or reject in the MCP host';
    this.#deps.logger.warn(
      {
        approval_id: a.id,
        digest: a.digest,
        tool: a.tool,
        agents: a.agent_count,
        at_risk: atRiskText(a.at_risk_cents),
        expires_at: new Date(a.expires_at).toISOString(),
        requester: a.requester,
        url,
      },
      `APPROVAL NEEDED: ${a.tool} on ${a.agent_count} agents (${a.agent_ids.slice(0, 10).join(', ')}${a.agent_count > 10 ? ', …' : ''}), ${atRiskText(a.at_risk_cents)} at risk, digest ${a.digest}. ${where} (operator secret required).`,
    );
    await this.#alert({
      level: 'page',
      priority: 'P0',
      severity: 'critical',
      agent_id: a.agent_ids[0] ?? 'fleet',
      signal: APPROVAL_REQUESTED,
      title: `Approval needed: ${a.tool} on ${a.agent_count} agents, ${atRiskText(a.at_risk_cents)} at risk, digest ${a.digest}. ${where}.`,
      actions: [`approval_requested ${a.id}`],
      details: { approval_id: a.id, digest: a.digest, url, expires_at: new Date(a.expires_at).toISOString() },
      operator_only: true,
    }).catch(() => undefined);
  }

  /** CREDITS held in escrow by these agents now: what the action would move. Null if any list fails. */
  async #atRiskCents(agentIds: readonly string[], signal?: AbortSignal): Promise<number | null> {
    const { monitor, config } = this.#deps;
    let failed = false;
    const sums = await mapBounded([...agentIds], 16, async (agentId) => {
      try {
        const held = await monitor.listAllEscrows(
          { agent_id: agentId, status: 'held' },
          { signal, timeoutMs: config.greenhelix.timeoutMs },
        );
        return held
          .filter((e) => e.payer === agentId && e.status === 'held')
          .reduce((n, e) => n + e.amount, 0);
      } catch {
        failed = true;
        return 0;
      }
    });
    return failed ? null : sums.reduce((n, x) => n + x, 0);
  }
}

export function atRiskText(cents: number | null): string {
  return cents === null ? 'unknown CREDITS' : `${formatCents(cents)} CREDITS`;
}

/**
 * What the model learns about an action waiting for approval: the status, the digest, the expiry and how
 * to check again. Never the page's address, never anything that approves.
 */
export function approvalError(
  tool: string,
  admission: Exclude<Admission, { status: 'admitted' }>,
): ToolError {
  const a = admission.approval;
  const again = `Call ${tool} again with exactly the same arguments to see whether it was approved, rejected or expired.`;
  switch (admission.status) {
    case 'pending':
      return new ToolError(
        'approval_pending',
        `${a.why} Waiting for an operator's approval: ${a.agent_count} agents, ${atRiskText(a.at_risk_cents)} at risk, action digest ${a.digest}, expires ${new Date(a.expires_at).toISOString()}. Nothing was done.`,
        true,
        `The operator has been told where to decide (it needs their secret; no code exists for you to pass on). ${again}`,
      );
    case 'rejected':
      return new ToolError(
        'approval_rejected',
        `The operator rejected this action (digest ${a.digest}). Nothing was done.`,
        false,
        'Do not retry it unchanged; act on fewer agents, or ask the person what to do.',
      );
    case 'expired':
      return new ToolError(
        'approval_expired',
        `The approval request (digest ${a.digest}) expired without being used. Nothing was done.`,
        true,
        `${again.replace('to see whether it was approved, rejected or expired', 'to ask for approval anew')}`,
      );
  }
}

function clean(
  params: ActingRequest['params'],
): Record<string, string | number | boolean | null> | undefined {
  if (!params) return undefined;
  const out: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(params)) if (v !== undefined) out[k] = v;
  return out;
}
