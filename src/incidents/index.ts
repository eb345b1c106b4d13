/**
 * The incident record and its durable store, the timeline and the post-mortem.
 */

export {
  type AuditKind,
  AuditLog,
  type AuditProblem,
  type AuditRecord,
  type AuditVerdict,
  auditHash,
  auditLastAssigned,
  auditRecords,
  type GatewayWriteIntent,
  type GatewayWriteOutcome,
  GENESIS_HASH,
  type GuardDecision,
  verifyAudit,
} from './audit.js';
export {
  type EscrowCancelRow,
  type EscrowCancelState,
  type EscrowCancelTotals,
  EscrowLedger,
  type LeaseRecord,
  Leases,
} from './escrow-ledger.js';
export {
  type MoneyPathAction,
  type MoneyPathItem,
  type MoneyPathKind,
  MoneyPathLedger,
  type MoneyPathRow,
  type MoneyPathState,
  type MoneyPathTotals,
} from './money-path-ledger.js';
export { PgDatabase, PgError, type PgOptions } from './pg.js';
export {
  buildPostmortem,
  buildTimeline,
  type MoneyPathsImpact,
  mdCell,
  type PostmortemReport,
  renderPostmortemMarkdown,
  type Timeline,
  type TimelineEntry,
} from './postmortem.js';
export { type ReplicaRecord, Replicas, type WakeRecord } from './replicas.js';
export { isSqlite, openSqlite, type SqlDatabase, type SqlStatement } from './sql.js';
export {
  type ActionRecord,
  type AlertRecord,
  type DetectionRecord,
  type GateRecord,
  type Incident,
  type IncidentPatch,
  type IncidentStatus,
  IncidentStore,
  type NewIncident,
  openStore,
  type PreIncidentState,
  type RecoveryStage,
  type ShadowDecision,
} from './store.js';
