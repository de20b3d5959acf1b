"""The runtime: requests and decisions, the evaluator of decision graphs, the registry, the detector cache."""
