"""Its TagQueryNode reads every node tagged "ta-indicator" (``Node(..., tags=["ta-indicator"])``) computed on the same bars with a store (``Runner.submit`` uses one; ``run(bars, store=qmtl.ArtifactStore())``), and any data bound to the tag (``run({"ta-indicator": data})``)."""
from qmtl.runtime.sdk import Strategy, Node, Runner, TagQueryNode, MatchMode
import pandas as pd

def calc_corr(view) -> pd.DataFrame:
    aligned = view.align_frames([(node_id, 3600) for node_id in view], window=24)
    frames = [frame.frame for frame in aligned if not frame.frame.empty]
    if not frames:
        return pd.DataFrame()

    corr = pd.concat(frames, axis=1).corr(method="pearson")
    return corr

class CorrelationStrategy(Strategy):
    def setup(self):
        # TagQueryNode: automatically resolves upstreams matching the tag/interval. Data bound under
        # "ta-indicator" (run({"ta-indicator": bars})) is its group: every symbol there is one stream.
        # (The docstring sits on one line so the blueprint's code keeps its line numbers.)
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
