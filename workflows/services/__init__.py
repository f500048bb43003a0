"""Writes and rules of workflows, by topic: workflows (and their versions), runs, approvals, signals,
schedules and the inbound webhook."""
