"""Writes and rules of quotas, one module per topic:

admission  which limits apply, admitting a request (reservations), settling and releasing
ledger     the usage ledger, its daily roll-up, reconciliation with the counters
"""
