"""Built-in tasks: datasets, pre-processing, post-processing and metrics."""
