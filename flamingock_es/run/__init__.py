"""The run: plan, lock, apply each unit between two durable events, compensate."""
