"""Execution: mirrorkit run (papermill, kernels, the papermill engine) and the sealed run folder."""
