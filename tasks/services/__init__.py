"""Writes and rules of tasks and webhooks, one module per topic:

records    tracked task records: start, cancel, retry, finish, resend
webhooks   webhook endpoints, the events emitted to them, the dispatch of due deliveries, replays
delivery   one delivery attempt: signing (Standard Webhooks) and the HTTP POST, its record and what follows
"""
