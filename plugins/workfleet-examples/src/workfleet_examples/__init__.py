"""Example workfleet plugins reproducing the simple-workflow examples guide."""
