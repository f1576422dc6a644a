# Pruning study rules (issue 5).
