"""Running a compiled strategy on a live feed: bars in from a feed, orders out through a durable log,
only while the world lets them through (docs/design.md "Live runs").

It sits beside ``qmtl.runner`` above the pipeline: it uses the compiler's product and the runtime, and
talks to the services only as a client (their HTTP API and event stream), never through their modules.
"""
