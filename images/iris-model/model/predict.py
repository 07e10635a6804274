"""predict INPUT.csv OUTPUT.csv: one output row per input row, in the same order."""
import pickle
import sys

import pandas as pd

MODEL = "/opt/model/model.pkl"


def main(source: str, target: str) -> int:
    with open(MODEL, "rb") as handle:
        model = pickle.load(handle)
    frame = pd.read_csv(source)
    missing = [c for c in model.feature_names if c not in frame.columns]
    if missing:
        print(f"input is missing columns: {', '.join(missing)}", file=sys.stderr)
        return 2
    probabilities = model.predict_proba(frame[model.feature_names])
    best = probabilities.argmax(axis=1)
    out = pd.DataFrame({
        "species": [model.class_names[i] for i in best],
        "probability": probabilities.max(axis=1).round(6),
    })
    out.to_csv(target, index=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
