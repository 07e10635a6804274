"""Train the iris classifier at build time, from the data set that ships with scikit-learn."""
import pickle
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

data = load_iris(as_frame=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
model.fit(data.data, data.target)
model.feature_names = list(data.data.columns)
model.class_names = list(data.target_names)
with open(sys.argv[1], "wb") as handle:
    pickle.dump(model, handle)
print(f"trained on {len(data.data)} rows, accuracy {model.score(data.data, data.target):.3f}")
