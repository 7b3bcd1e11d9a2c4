"""The gateway: accepts canonical DAGs, verifies their NodeIDs, diffs them against the global strategy
graph, relays control events and proxies the world routes (DESIGN.md "Services")."""
