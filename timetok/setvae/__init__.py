"""SeqSetVAE: set-VAE pretraining on irregular ICU records, then mortality classification."""
