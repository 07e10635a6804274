"""The scientific libraries import and work together."""

SCRIPT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

frame = load_iris(as_frame=True).frame
model = DecisionTreeClassifier(random_state=0).fit(frame.drop(columns="target"), frame.target)
assert model.score(frame.drop(columns="target"), frame.target) > 0.95
fig, ax = plt.subplots()
ax.plot(np.arange(10), np.arange(10) ** 2)
fig.savefig("/tmp/plot.png")
print("ok", pd.__version__, np.__version__)
"""


def test_scientific_stack_works(container):
    code, output = container.run(["python", "-c", SCRIPT], entrypoint=[])
    assert code == 0, output
    assert "ok" in output
