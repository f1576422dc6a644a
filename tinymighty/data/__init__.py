"""Data: the dataset on disk, its splits, and the features the models train on."""
