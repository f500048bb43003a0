"""The workflow engine: runs and step runs are rows; every step whose needs are met is a Celery task.

    scheduling   which steps may run now, the run's end, the transitions of a step (one transaction each)
    execution    a worker takes a step (a claim and a lease), runs its kind, records the outcome, retries
    kinds        what each kind of step does
    reaper       steps whose worker vanished are queued again; waiting steps whose time came are woken

A step is claimed with a conditional UPDATE (queued -> running, claim + 1) and finished with another that
names the claim, so a step redelivered, re-queued by the reaper or taken over is run once and recorded once;
agent steps call the pipeline with the idempotency key run:step:attempt, so they are charged once.
"""
