"""Export, parity gates, TensorRT, edge bundles, benchmarking and the CI latency gate."""
