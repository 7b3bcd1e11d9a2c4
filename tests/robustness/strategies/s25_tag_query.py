"""TagQueryNode over a dict-bound dataset: iterating the view is opaque by nature."""
import pandas as pd

from qmtl.runtime.sdk import MatchMode, Node, Strategy, TagQueryNode


class TagQueryBasket(Strategy):
    def setup(self):
        basket = TagQueryNode(["crypto"], interval=60, period=10, match_mode=MatchMode.ANY, name="basket")

        def average_return(view):
            rets = [view[nid][60]["close"].pct_change().iloc[-1] for nid in view]
            return pd.Series([sum(rets) / len(rets)])

        avg = Node(input=basket, compute_fn=average_return, name="avg_ret")
        self.add_nodes([basket, avg])
