"""Building blocks shared by the systems: RevIN, conv encoders/decoders, quantizers."""
