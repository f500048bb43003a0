"""Writes and rules of agents, one module per topic:

catalog     the built-in provider, model and agent type; response cache invalidation
agents      agents: create, change, delete
invocation  the entries of the invocation pipeline (plain, streamed, as a task)
pipeline    its steps, each a small named function
guarding    the content policies applied by those steps (inputs, answers, streams, traces)
external_guards  the operators' external guard services, called by them
"""
