"""The model's domain: datasets, columns and their roles, the scikit-learn Pipeline and its metrics."""
