from tests.agents.conftest import agent, agent_type, fake_llm, model  # noqa: F401  (the agents cast, for the metrics)
