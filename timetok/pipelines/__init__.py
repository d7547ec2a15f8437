"""User-facing APIs over trained model folders: data on its original scale in, answers out."""
