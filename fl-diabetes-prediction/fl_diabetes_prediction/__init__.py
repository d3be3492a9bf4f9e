"""Federated diabetes prediction: a logistic regression trained where the data lives."""
