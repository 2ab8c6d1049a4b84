"""What both Lambda functions (the token proxy and the rotator) set up the same way, shipped in
both build artifacts: settings read from the environment (:mod:`function_setup.environment`),
the metrics sink their domain code writes to (:mod:`function_setup.metrics`), and Powertools'
logger and metrics for the handler (:mod:`function_setup.powertools`)."""
