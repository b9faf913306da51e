"""The embedded demo: a procedurally drawn catalog in the Kaggle format, and the orchestration
that ingests it and starts the API and the UI on one machine, offline."""
