from qmtl.runtime.sdk import Strategy, Node, StreamInput, Runner
import pandas as pd

# Strategy definition
class GeneralStrategy(Strategy):
    def setup(self):
        price_stream = StreamInput(
            interval="60s",    # 1-minute bars
            period=30           # require the last 30 bars
        )

        def generate_signal(view) -> pd.DataFrame:
            price = view.as_frame(price_stream, 60, columns=["close"]).validate_columns(["close"])
            momentum = price.frame["close"].pct_change().rolling(5).mean()
            signal = (momentum > 0).astype(int)
            return pd.DataFrame({"signal": signal})

        signal_node = Node(
            input=price_stream,
            compute_fn=generate_signal,
            name="momentum_signal"
        )

        self.add_nodes([price_stream, signal_node])

# World-driven execution entry point
if __name__ == "__main__":
    Runner.submit(GeneralStrategy, world="general_demo")
