"""A test-only app with one shareable model, standing for the agents, workflows and memory namespaces
that later issues add: it exercises sharing, the role gate and owner isolation end to end."""
