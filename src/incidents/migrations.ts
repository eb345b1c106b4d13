/**
 * Schema migrations, applied in order at open (each in a transaction, recorded in `user_version`).
 * Never edit a shipped migration: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    primary_agent_id TEXT NOT NULL,
    agent_ids TEXT NOT NULL,
    reason TEXT NOT NULL,
    signal TEXT, severity TEXT, priority TEXT, runbook TEXT,
    suspect_payee TEXT, parent_incident_id TEXT REFERENCES incidents(id),
    created_at INTEGER NOT NULL,
    detected_at INTEGER, containment_started_at INTEGER, frozen_at INTEGER, contained_at INTEGER,
    recovery_started_at INTEGER, resolved_at INTEGER,
    time_to_freeze_ms INTEGER, containment_elapsed_ms INTEGER, met_sla INTEGER,
    escrows_cancelled INTEGER, escrows_failed INTEGER, amount_unlocked_cents INTEGER,
    widened_to TEXT, root_cause_agent TEXT
  );
  CREATE INDEX incidents_agent_status ON incidents (primary_agent_id, status);
  CREATE INDEX incidents_created ON incidents (created_at);
  CREATE TABLE incident_agents (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    PRIMARY KEY (incident_id, agent_id)
  );
  CREATE INDEX incident_agents_agent ON incident_agents (agent_id);
  CREATE TABLE actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    params TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    duration_ms INTEGER,
    success INTEGER,
    error_code TEXT,
    error_message TEXT,
    result TEXT
  );
  CREATE INDEX actions_incident ON actions (incident_id, started_at);
  CREATE TABLE pre_incident_state (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    daily_cap INTEGER, monthly_cap INTEGER, alert_threshold REAL, balance_cents INTEGER, frozen_before INTEGER,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (incident_id, agent_id)
  );
  CREATE TABLE agent_state (
    agent_id TEXT PRIMARY KEY,
    frozen INTEGER, frozen_incident_id TEXT, frozen_at INTEGER
  );
  CREATE TABLE key_pins (
    agent_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    source TEXT NOT NULL,
    pinned_at INTEGER NOT NULL
  );
  CREATE TABLE detection_state (
    agent_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE threshold_overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE TABLE recovery_stages (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    percent INTEGER NOT NULL,
    daily_cap INTEGER NOT NULL,
    monthly_cap INTEGER NOT NULL,
    gates TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (incident_id, agent_id, stage)
  );
  CREATE TABLE gates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    gate TEXT NOT NULL, passed INTEGER NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL, by TEXT
  );
  CREATE TABLE postmortems (
    incident_id TEXT PRIMARY KEY REFERENCES incidents(id),
    report TEXT NOT NULL,
    markdown TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE seen (namespace TEXT NOT NULL, key TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (namespace, key));
  CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT, agent_id TEXT NOT NULL, signal TEXT NOT NULL, severity TEXT NOT NULL, priority TEXT NOT NULL,
    tier TEXT NOT NULL, actions TEXT NOT NULL, sinks TEXT NOT NULL, at INTEGER NOT NULL
  );
  CREATE INDEX alerts_at ON alerts (at);
  `,
  // 2: containment rounds. An agent re-contained while recovering starts recovery over at stage 1, so
  // stages are kept per round (the primary key gains the round; SQLite needs a table rebuild for that).
  `
  ALTER TABLE incidents ADD COLUMN containment_round INTEGER NOT NULL DEFAULT 1;
  CREATE TABLE recovery_stages_v2 (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    round INTEGER NOT NULL DEFAULT 1,
    stage INTEGER NOT NULL,
    percent INTEGER NOT NULL,
    daily_cap INTEGER NOT NULL,
    monthly_cap INTEGER NOT NULL,
    gates TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (incident_id, agent_id, round, stage)
  );
  INSERT INTO recovery_stages_v2 (incident_id, agent_id, round, stage, percent, daily_cap, monthly_cap, gates, at)
    SELECT incident_id, agent_id, 1, stage, percent, daily_cap, monthly_cap, gates, at FROM recovery_stages;
  DROP TABLE recovery_stages;
  ALTER TABLE recovery_stages_v2 RENAME TO recovery_stages;
  `,
  // 3: money-exact containment. Every escrow our containment touches gets one row (the id is the key, so
  // no escrow is ever cancelled twice by us, however the gateway's list moves), written before the cancel is
  // sent; totals are sums over these rows, so every run of a resumed incident counts each refund once.
  // Leases: one process acts on an agent at a time, across processes sharing the store.
  `
  CREATE TABLE escrow_cancels (
    escrow_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    payee TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX escrow_cancels_incident ON escrow_cancels (incident_id, state);
  CREATE INDEX escrow_cancels_agent ON escrow_cancels (agent_id);
  CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
  // 4: shadow mode. What the watcher would have done, decision by decision, so a team can measure the
  // false-alarm rate on its own fleet before it lets the watcher act.
  `
  CREATE TABLE shadow_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    signal TEXT NOT NULL,
    severity TEXT NOT NULL,
    priority TEXT NOT NULL,
    tier TEXT NOT NULL,
    action TEXT NOT NULL,
    runbook TEXT,
    summary TEXT NOT NULL
  );
  CREATE INDEX shadow_decisions_at ON shadow_decisions (at);
  `,
  // 5: the audit log (audit.ts): guard decisions and gateway writes, each record linked to the one before
  // by its SHA-256. AUTOINCREMENT: sqlite_sequence keeps the highest number ever given, so the removal of
  // the last record leaves a gap that verification sees, like any other.
  `
  CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  `,
  // 6: money paths beyond escrows. One row per payment intent or subscription containment acts on (void a
  // pending intent, cancel an active subscription) or a person confirms a claw-back of (refund a settled
  // intent), keyed by the gateway's id: the gateway lets a settled intent be refunded again and again, so
  // "at most once" has to be our record, written before the call is sent.
  `
  CREATE TABLE money_path_actions (
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    agent_id TEXT NOT NULL,
    action TEXT NOT NULL,
    payee TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    detail TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, object_id)
  );
  CREATE INDEX money_path_actions_incident ON money_path_actions (incident_id, kind, state);
  CREATE INDEX money_path_actions_agent ON money_path_actions (agent_id);
  `,
  // 7: replicas. Each server process heartbeats a row; the live watching ones (heartbeat within the TTL)
  // split the fleet between them by rendezvous hashing, so each agent is polled by one replica and a dead
  // replica's agents move to the others once its heartbeat goes stale; a dead process's leases are taken
  // over at once. `wakes` carries "poll this agent now" (an
  // event on the bus, a webhook) from the replica that heard it to the one that owns the agent.
  `
  CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    ttl_ms INTEGER NOT NULL,
    watching INTEGER NOT NULL DEFAULT 0,
    left_at INTEGER
  );
  CREATE TABLE wakes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX wakes_at ON wakes (at);
  `,
];
