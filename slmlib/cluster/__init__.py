"""The study on Dask distributed: work units, the client, workers and their checks, TLS."""
