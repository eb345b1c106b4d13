/**
 * The five runbooks (SPEC "The five runbooks") as data: trigger, severity, automated steps and the
 * follow-up left to people. `playbooks.ts` is the code that runs them; `runbook://{name}` renders them.
 */
export type RunbookName =
  | 'runaway_spending'
  | 'escrow_exploitation'
  | 'identity_compromise'
  | 'service_degradation'
  | 'cascade_failure';

export interface RunbookInfo {
  name: RunbookName;
  title: string;
  triggers: string[];
  priority: 'P0' | 'P1' | 'P2';
  automated_steps: string[];
  follow_up: string[];
}

export const RUNBOOKS: Record<RunbookName, RunbookInfo> = {
  runaway_spending: {
    name: 'runaway_spending',
    title: 'Runaway spending (retry loop, cost explosion)',
    triggers: ['cost_anomaly (critical)', 'escrow_burst'],
    priority: 'P0',
    automated_steps: [
      'Freeze the wallet and set budget caps to 0 (pre-incident caps recorded first)',
      'If the freeze fails: page "manual intervention required" and stop',
      'Cancel every held escrow the agent pays (measured refund window)',
      'Check identity against the pinned key',
      'Page on-call with counts and CREDITS recovered',
    ],
    follow_up: [
      'Find the loop and fix it',
      'Verify the fix in staging at 30 s polling for 1 h',
      'Recover at 50 % with recover_agent',
      'Write the post-mortem (run_postmortem)',
    ],
  },
  escrow_exploitation: {
    name: 'escrow_exploitation',
    title: 'Escrow exploitation (a payee farming a payer)',
    triggers: ['escrow_exploitation'],
    priority: 'P1',
    automated_steps: [
      'Freeze the payer and the suspect payee (so the payee cannot release held escrows to itself)',
      'Cancel only the escrows to the suspect payee',
      "Read the payee's reputation",
      'Flag the payee with a counterparty_flagged event',
      'Optionally open a dispute on the held escrows to the payee (params.open_dispute)',
      'Page on-call',
    ],
    follow_up: [
      "Review the payee's history (claim chains)",
      'Dispute if confirmed',
      'If a false positive: recover the payer, unfreeze the payee and clear the flag',
    ],
  },
  identity_compromise: {
    name: 'identity_compromise',
    title: 'Identity compromise (key replaced, verification failing)',
    triggers: ['identity_compromise'],
    priority: 'P0',
    automated_steps: [
      'Preserve the identity record, claim chains and verified claims before anything else',
      'Full containment: freeze, caps to 0, cancel held escrows',
      'Read reputation',
      'Publish a security_incident event',
      'Page on-call',
    ],
    follow_up: [
      'Rotate keys and re-register the identity',
      'Audit every transaction since the last good verification',
      'Re-verify counterparties',
      'Post-mortem over the whole window',
    ],
  },
  service_degradation: {
    name: 'service_degradation',
    title: 'Service degradation (reputation drifting down)',
    triggers: ['reputation_drift (warning or critical)'],
    priority: 'P2',
    automated_steps: [
      'No freeze: cut the daily budget cap by 50 % (pre-incident caps recorded first)',
      'Read reputation and usage',
      'Publish a service_degradation event',
      'Alert in chat',
    ],
    follow_up: [
      'Review outputs and feedback',
      'Check for model, prompt or upstream drift',
      'Fix and submit corrected metrics',
      'Restore the budget in steps (recover_agent)',
    ],
  },
  cascade_failure: {
    name: 'cascade_failure',
    title: 'Cascade failure (several agents failing together)',
    triggers: ['cascade'],
    priority: 'P0',
    automated_steps: [
      'Contain every affected agent at once',
      'Name the root-cause agent (largest spend anomaly)',
      'Forensics on the root-cause agent (identity, claim chains, transactions)',
      'Publish a cascade_detected event',
      'Page on-call',
    ],
    follow_up: [
      'Map the dependency chain',
      'Fix the root-cause agent first',
      'Recover downstream agents in dependency order',
      'Add circuit breakers between agents',
      'Post-mortems for every contained agent',
    ],
  },
};

export function listRunbookNames(): RunbookName[] {
  return Object.keys(RUNBOOKS) as RunbookName[];
}

export function isRunbookName(name: string): name is RunbookName {
  return Object.hasOwn(RUNBOOKS, name);
}

/** `runbook://{name}` as Markdown. */
export function renderRunbookMarkdown(name: string): string | undefined {
  if (!isRunbookName(name)) return undefined;
  const r = RUNBOOKS[name];
  return [
    `# Runbook: ${r.title}`,
    '',
    `- **Name:** \`${r.name}\``,
    `- **Trigger:** ${r.triggers.join(', ')}`,
    `- **Severity:** ${r.priority}`,
    '',
    '## Automated steps',
    ...r.automated_steps.map((s, i) => `${i + 1}. ${s}`),
    '',
    '## Follow-up for people',
    ...r.follow_up.map((s) => `- [ ] ${s}`),
    '',
    `Run it: \`run_runbook {"runbook": "${r.name}", "agent_ids": ["…"], "dry_run": true}\`, then again with \`dry_run: false\`.`,
    '',
  ].join('\n');
}

/** Which runbook answers a signal. */
export function runbookForSignal(signal: string): RunbookName | undefined {
  switch (signal) {
    case 'cost_anomaly':
    case 'escrow_burst':
    case 'budget_exhaustion':
      return 'runaway_spending';
    case 'escrow_exploitation':
      return 'escrow_exploitation';
    case 'identity_compromise':
      return 'identity_compromise';
    case 'reputation_drift':
      return 'service_degradation';
    case 'cascade':
      return 'cascade_failure';
    default:
      return undefined;
  }
}
