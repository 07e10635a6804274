"""A scikit-learn model exported to ONNX predicts the same classes under onnxruntime."""

SCRIPT = """
import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
model = LogisticRegression(max_iter=500).fit(X, y)
session = ort.InferenceSession(to_onnx(model, X[:1]).SerializeToString(), providers=["CPUExecutionProvider"])
labels = session.run(None, {session.get_inputs()[0].name: X})[0]
assert (labels == model.predict(X)).all()
print("providers", ort.get_available_providers())
"""


def test_onnx_roundtrip(container):
    code, output = container.run(["python", "-c", SCRIPT], entrypoint=[])
    assert code == 0, output
    assert "CPUExecutionProvider" in output
