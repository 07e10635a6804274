"""Regenerate reference.csv: 1000 iris-like rows (measurements jittered by up to 0.3 cm), seed 0.

Run inside the datascience image: python make_reference.py > reference.csv
"""
import numpy as np
from sklearn.datasets import load_iris

frame = load_iris(as_frame=True).data
rng = np.random.default_rng(0)
rows = frame.sample(n=1000, replace=True, random_state=0).to_numpy()
rows = np.clip(rows + rng.uniform(-0.3, 0.3, size=rows.shape), 0.1, None).round(2)
print(",".join(frame.columns))
for row in rows:
    print(",".join(f"{v:.2f}" for v in row))
