"""Model: architectures, training, TFLite conversion, size estimates and evaluation."""
