"""The algorithms (oracle, bias, TTA, ImageNet-Hard), free of model- and dataset-specific code."""
