"""The world service: worlds, policies, evaluation, decisions, activation, apply, audit, allocations.

It is the single source of truth for what may run where; ``create_app(db, bus, activation_cache)``
builds the FastAPI app over the storage seam and the control bus.
"""
