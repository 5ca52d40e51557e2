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
    # 4: operator holds (`reconciler hold`): a held job is never claimed by the submitter.  One row
    # per held job, who held it and when; `release` deletes the row (the events keep the history).
    """
    CREATE TABLE holds (
        uuid TEXT PRIMARY KEY,
        at   TEXT NOT NULL,
        by   TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)
