"""The forecaster: a language model over tokenizer codes, finetuned to forecast H steps."""
