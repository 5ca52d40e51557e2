"""A job and what a user types: the state table, validators, records, CSV import. Pure, no I/O."""
