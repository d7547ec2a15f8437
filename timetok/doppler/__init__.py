"""The micro-Doppler spectrogram generator: a 2-D VQ-VAE and a user-conditioned prior."""
