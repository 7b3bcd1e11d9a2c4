"""Correlation across indicator streams: a TagQueryNode gathers every stream tagged ``ta-indicator``.

A TagQueryNode reads the streams bound under its tag, so bind the data by tag when you run it::

    import qmtl
    c = qmtl.compile("examples/correlation.py")
    r = c.run({"ta-indicator": data})   # data: bars with a ``symbol`` column, one stream per symbol

Every symbol in ``data`` is one stream of the group (the dict key tags them all), and
``indicator_corr`` is ``calc_corr`` of the group's last 24 hourly bars, once per hour.
``python examples/correlation.py`` submits the strategy to the ``corr_demo`` world (the code below
is the blueprint's example, unchanged).
"""

from qmtl.runtime.sdk import Strategy, Node, Runner, TagQueryNode, MatchMode
import pandas as pd

# User-defined correlation helper
def calc_corr(view) -> pd.DataFrame:
    aligned = view.align_frames([(node_id, 3600) for node_id in view], window=24)
    frames = [frame.frame for frame in aligned if not frame.frame.empty]
    if not frames:
        return pd.DataFrame()

    corr = pd.concat(frames, axis=1).corr(method="pearson")
    return corr

class CorrelationStrategy(Strategy):
    def setup(self):
        # TagQueryNode: automatically resolves upstreams matching the tag/interval
        indicators = TagQueryNode(
            query_tags=["ta-indicator"],  # match existing RSI, MFI, etc.
            interval="1h",               # hourly bars
            period=24,                    # keep the last 24 hours
            match_mode=MatchMode.ANY,     # OR-matching by default
            compute_fn=calc_corr          # compute correlation directly
        )

        corr_node = Node(
            input=indicators,
            compute_fn=calc_corr,
            name="indicator_corr"
        )

        self.add_nodes([indicators, corr_node])

        # match_mode=MatchMode.ANY matches queues with any tag; MatchMode.ALL
        # restricts to queues containing all tags.

# Live execution example (world-driven)
if __name__ == "__main__":
    Runner.submit(CorrelationStrategy, world="corr_demo")
