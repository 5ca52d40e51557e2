"""The SQLite ledger: migrations, the store, the set-based mailbox batch, the file and its lock.

It writes what it is told: the decisions are made above it and handed down as records.
"""
