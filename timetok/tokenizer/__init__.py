"""The time-series tokenizer: a 1-D VQ-VAE turning each channel into codes and back."""
