# Quantization study rules (issue 4).
