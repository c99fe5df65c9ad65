"""The domain core: the catalog reader, plans, the T-SQL builder, verify's checks and certificate artifacts.

No module here imports the notebook or execution layers."""
