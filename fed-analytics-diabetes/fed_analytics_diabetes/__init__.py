"""Federated analytics of the Pima diabetes data: histograms and statistics per outcome."""
