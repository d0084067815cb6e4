"""OpsMap reconciler: the map repo model, validation, and the long-running reconciler."""
