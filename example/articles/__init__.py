"""Articles: the example's model with webhooks."""
