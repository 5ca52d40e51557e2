"""The ledger's schema as numbered migrations.

``PRAGMA user_version`` holds the number of migrations applied; each runs in
its own transaction at open.  Never edit a migration that has shipped: add one.
"""

from __future__ import annotations

import hashlib


def sha256_hex(value: object) -> str | None:
    """The SQL function ``sha256(blob)`` that migration 3 uses; register it on every connection that migrates."""
    return hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else None


MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, the append-only event log, mailbox checkpoints and message dedupe, health facts.
    """
    CREATE TABLE jobs (
        uuid              TEXT PRIMARY KEY,
        rfc_emisor        TEXT NOT NULL,
        motivo            TEXT NOT NULL CHECK (motivo IN ('01', '02', '03', '04')),
        folio_sustitucion TEXT,
        state             TEXT NOT NULL
                          CHECK (state IN ('queued', 'submitting', 'awaiting', 'ok', 'error', 'rejected')),
        code              INTEGER,
        message           TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   TEXT,
        created_at        TEXT NOT NULL,
        submitted_at      TEXT,
        resolved_at       TEXT,
        updated_at        TEXT NOT NULL,
        claim             TEXT CHECK (claim IN ('OK')),
        check_at          TEXT,
        checks            INTEGER NOT NULL DEFAULT 0,
        overdue_at        TEXT,
        acuse             BLOB
    );
    CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 'queued';
    CREATE INDEX jobs_check ON jobs (check_at) WHERE state = 'awaiting';
    CREATE INDEX jobs_state ON jobs (state, created_at);
    CREATE INDEX jobs_created ON jobs (created_at);

    CREATE TABLE events (
        id     INTEGER PRIMARY KEY,
        uuid   TEXT,
        at     TEXT NOT NULL,
        kind   TEXT NOT NULL,
        source TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_uuid ON events (uuid, id);
    -- Only the rare kinds that `check` and `summary` count are indexed: most events are
    -- transitions and notifications, and every index costs each of them an insert.
    CREATE INDEX events_kind ON events (kind, at)
        WHERE kind IN ('conflict', 'untrusted', 'orphan', 'malformed', 'breaker', 'overdue');
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

    CREATE TABLE mailbox_state (
        folder      TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid    INTEGER NOT NULL,
        updated_at  TEXT NOT NULL
    );

    CREATE TABLE messages (
        folder      TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid         INTEGER NOT NULL,
        message_id  TEXT,
        uuid        TEXT,
        status      TEXT,
        outcome     TEXT NOT NULL,
        mark        INTEGER NOT NULL,
        marked      INTEGER NOT NULL DEFAULT 0,
        seen_at     TEXT NOT NULL,
        PRIMARY KEY (folder, uidvalidity, uid)
    );
    CREATE INDEX messages_applied_mid ON messages (message_id)
        WHERE message_id IS NOT NULL AND outcome IN ('applied', 'claimed');
    CREATE INDEX messages_unmarked ON messages (folder, uidvalidity) WHERE mark = 1 AND marked = 0;

    CREATE TABLE facts (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        at    TEXT NOT NULL
    );
    """,
    # 2: which notifications are flagged or moved is one watermark per folder (every UID up to
    # mailbox_state.marked_uid that needed a mark has had it) instead of a flag on every message
    # row, and `messages` is stored WITHOUT ROWID: a mailbox pass writes one B-tree entry less per
    # notification on insert and no longer rewrites every row (and an index) to record its mark.
    # Rows still unmarked under version 1 stay above the watermark, so they are marked again.
    """
    ALTER TABLE mailbox_state ADD COLUMN marked_uid INTEGER NOT NULL DEFAULT 0;
    UPDATE mailbox_state SET marked_uid = coalesce(
        (SELECT min(m.uid) - 1 FROM messages m
         WHERE m.folder = mailbox_state.folder AND m.uidvalidity = mailbox_state.uidvalidity
           AND m.mark = 1 AND m.marked = 0),
        last_uid
    );

    CREATE TABLE messages_2 (
        folder      TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid         INTEGER NOT NULL,
        message_id  TEXT,
        uuid        TEXT,
        status      TEXT,
        outcome     TEXT NOT NULL,
        mark        INTEGER NOT NULL,
        seen_at     TEXT NOT NULL,
        PRIMARY KEY (folder, uidvalidity, uid)
    ) WITHOUT ROWID;
    INSERT INTO messages_2 (folder, uidvalidity, uid, message_id, uuid, status, outcome, mark, seen_at)
        SELECT folder, uidvalidity, uid, message_id, uuid, status, outcome, mark, seen_at FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_2 RENAME TO messages;
    CREATE INDEX messages_applied_mid ON messages (message_id)
        WHERE message_id IS NOT NULL AND outcome IN ('applied', 'claimed');
    """,
    # 3: the SHA-256 of the stored acuse (hex), shown by `status UUID`; filled for the acuses already
    # stored (the ledger registers sha256() on its connection while it migrates).
    """
    ALTER TABLE jobs ADD COLUMN acuse_sha256 TEXT;
    UPDATE jobs SET acuse_sha256 = sha256(acuse) WHERE acuse IS NOT NULL;
    """,
    # 4: what the SAT's status service needs (the receiver's RFC, the total, the sello's last 8
    # characters) and the SAT's latest word on each job with its follow-up schedule: sat_due_at is
    # the next ask (UTC text, like next_attempt_at), sat_cleared opens the preflight gate,
    # sat_since is the acceptance the follow-up counts from, sat_until the end of the receiver's
    # window, sat_late_after the window with margin.
    """
    ALTER TABLE jobs ADD COLUMN rfc_receptor TEXT;
    ALTER TABLE jobs ADD COLUMN total TEXT;
    ALTER TABLE jobs ADD COLUMN sello TEXT;
    ALTER TABLE jobs ADD COLUMN sat_estado TEXT;
    ALTER TABLE jobs ADD COLUMN sat_es_cancelable TEXT;
    ALTER TABLE jobs ADD COLUMN sat_estatus_cancelacion TEXT;
    ALTER TABLE jobs ADD COLUMN sat_checked_at TEXT;
    ALTER TABLE jobs ADD COLUMN sat_due_at TEXT;
    ALTER TABLE jobs ADD COLUMN sat_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN sat_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN sat_first_at TEXT;
    ALTER TABLE jobs ADD COLUMN sat_since TEXT;
    ALTER TABLE jobs ADD COLUMN sat_until TEXT;
    ALTER TABLE jobs ADD COLUMN sat_late_after TEXT;
    ALTER TABLE jobs ADD COLUMN sat_cleared INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_sat_due ON jobs (sat_due_at) WHERE sat_due_at IS NOT NULL;
    """,
    # 5: the transactional outbox.  Triggers write an outbox row in the same transaction as every
    # state change (not the internal `submitting` hop: a job claimed and sent shows as queued ->
    # awaiting, and a retry after a transient failure is no change), every SAT observation and every
    # conflict, whichever code path made it, so a crash can neither lose nor invent an event.
    # `seq` (AUTOINCREMENT: never reused after pruning) orders the feed; `id` is the receivers'
    # idempotency key.  Delivery state lives per endpoint (a webhook or a command hook):
    # `endpoints.cursor` is the last seq the dispatcher has looked at for it.
    """
    CREATE TABLE outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        id      TEXT NOT NULL,
        at      TEXT NOT NULL,
        type    TEXT NOT NULL,
        uuid    TEXT,
        payload TEXT NOT NULL
    );
    CREATE TABLE endpoints (
        name            TEXT PRIMARY KEY,
        cursor          INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        last_success_at TEXT,
        disabled_at     TEXT,
        disabled_reason TEXT
    );
    CREATE TABLE deliveries (
        endpoint     TEXT NOT NULL,
        seq          INTEGER NOT NULL,
        uuid         TEXT,
        state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_at      TEXT NOT NULL,
        last_status  INTEGER,
        last_error   TEXT,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (endpoint, seq)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_pending ON deliveries (endpoint, uuid, seq) WHERE state = 'pending';
    CREATE INDEX deliveries_due ON deliveries (endpoint, seq) WHERE state = 'pending';
    CREATE INDEX deliveries_seq ON deliveries (seq);

    CREATE TRIGGER outbox_job_created AFTER INSERT ON jobs BEGIN
        INSERT INTO outbox (id, at, type, uuid, payload)
        VALUES ('evt_' || lower(hex(randomblob(16))), new.updated_at, 'job.' || new.state, new.uuid,
                json_object('uuid', new.uuid, 'rfc_emisor', new.rfc_emisor, 'old_state', NULL,
                            'new_state', new.state, 'code', new.code, 'message', new.message));
    END;
    CREATE TRIGGER outbox_job_state AFTER UPDATE OF state ON jobs
        WHEN new.state IS NOT old.state AND new.state != 'submitting'
             AND NOT (old.state = 'submitting' AND new.state = 'queued')
    BEGIN
        INSERT INTO outbox (id, at, type, uuid, payload)
        VALUES ('evt_' || lower(hex(randomblob(16))), new.updated_at, 'job.' || new.state, new.uuid,
                json_object('uuid', new.uuid, 'rfc_emisor', new.rfc_emisor,
                            'old_state', CASE old.state WHEN 'submitting' THEN 'queued' ELSE old.state END,
                            'new_state', new.state, 'code', new.code, 'message', new.message));
    END;
    CREATE TRIGGER outbox_job_event AFTER INSERT ON events
        WHEN new.kind IN ('conflict', 'sat') AND new.uuid IS NOT NULL
    BEGIN
        INSERT INTO outbox (id, at, type, uuid, payload)
        VALUES ('evt_' || lower(hex(randomblob(16))), new.at, 'job.' || new.kind, new.uuid,
                coalesce(
                    (SELECT json_object('uuid', j.uuid, 'rfc_emisor', j.rfc_emisor, 'old_state', j.state,
                                        'new_state', j.state, 'code', j.code, 'message', j.message,
                                        'detail', CASE WHEN json_valid(new.detail) THEN json(new.detail)
                                                       ELSE new.detail END)
                     FROM jobs j WHERE j.uuid = new.uuid),
                    json_object('uuid', new.uuid, 'rfc_emisor', NULL, 'old_state', NULL, 'new_state', NULL,
                                'code', NULL, 'message', NULL, 'detail',
                                CASE WHEN json_valid(new.detail) THEN json(new.detail) ELSE new.detail END)));
    END;
    """,
    # 6: operator holds (`reconciler hold`): a held job is never claimed by the submitter.  One row
    # per held job, who held it and when; `release` deletes the row (the events keep the history).
    """
    CREATE TABLE holds (
        uuid TEXT PRIMARY KEY,
        at   TEXT NOT NULL,
        by   TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)
