"""The human loop on PostgreSQL: migrations, cases, label events, heartbeats, readiness.

Repositories take an open connection and never commit on their own: the caller's
``with connect(params) as conn:`` block is the transaction.
"""
