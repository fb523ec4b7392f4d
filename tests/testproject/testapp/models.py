"""Models of the test app (owned by the model-events work)."""
