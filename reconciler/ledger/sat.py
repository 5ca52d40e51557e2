"""The SAT dimension's columns and queries on the jobs table (written as the SAT follower decides).

The counts here mirror :func:`reconciler.sat.verdict.judge` for the views ``check`` and
``summary`` count; a test compares the two over the same jobs.
"""

from __future__ import annotations

COLUMNS = (
    "rfc_receptor, total, sello, sat_estado, sat_es_cancelable, sat_estatus_cancelacion, sat_checked_at, "
    "sat_due_at, sat_calls, sat_failures, sat_first_at, sat_since, sat_until, sat_late_after, sat_cleared"
)
SETTABLE = (
    "sat_estado",
    "sat_es_cancelable",
    "sat_estatus_cancelacion",
    "sat_checked_at",
    "sat_due_at",
    "sat_calls",
    "sat_failures",
    "sat_first_at",
    "sat_since",
    "sat_until",
    "sat_late_after",
    "sat_cleared",
)

# Queued jobs the preflight has not cleared yet, due now (a new job has no due time: due at once).
PREFLIGHT_DUE = (
    "state = 'queued' AND sat_cleared = 0 AND coalesce(sat_due_at, '') <= ? ORDER BY coalesce(sat_due_at, ''), "
    "created_at LIMIT ?"
)
# Accepted jobs whose follow-up has not started for this acceptance (a requeued job starts again).
TO_FOLLOW = (
    "state IN ('awaiting', 'ok') AND submitted_at IS NOT NULL AND (sat_since IS NULL OR sat_since < submitted_at)"
    " ORDER BY submitted_at LIMIT ?"
)
FOLLOW_DUE = "state IN ('awaiting', 'ok') AND sat_since IS NOT NULL AND sat_due_at <= ? ORDER BY sat_due_at LIMIT ?"

# One row of counts, in this order, with ``now`` bound three times.
COUNTS_SQL = """
SELECT
  sum(sat_estado = 'Cancelado'),
  sum(sat_estado = 'Vigente' AND sat_estatus_cancelacion = 'Solicitud rechazada'),
  sum(sat_estado = 'Vigente' AND coalesce(sat_estatus_cancelacion, '') != 'Solicitud rechazada'
      AND sat_es_cancelable = 'No cancelable'),
  sum(sat_estado = 'Vigente' AND coalesce(sat_estatus_cancelacion, '') != 'Solicitud rechazada'
      AND coalesce(sat_es_cancelable, '') != 'No cancelable' AND state = 'ok' AND sat_late_after <= ?),
  sum(sat_checked_at IS NOT NULL AND sat_estado IN ('Vigente', 'No Encontrado') AND state = 'awaiting'
      AND coalesce(sat_estatus_cancelacion, '') != 'Solicitud rechazada'
      AND coalesce(sat_es_cancelable, '') != 'No cancelable' AND sat_late_after <= ?),
  sum(sat_estado = 'Vigente' AND sat_estatus_cancelacion = 'En proceso' AND state IN ('awaiting', 'ok')
      AND coalesce(sat_until, '') > ?),
  sum(sat_checked_at IS NOT NULL)
FROM jobs
"""
COUNT_NAMES = ("cancelled", "receiver_rejected", "not_cancellable", "contradiction", "late", "receiver", "asked")
