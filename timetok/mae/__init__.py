"""TimeMAE: masked pretraining on labelled series, then classification."""
