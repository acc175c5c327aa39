"""drugs: medicine packs traceable and verifiable on the network (issue 15)."""
