"""Many images in bounded memory: a reader thread, batches, worker threads on network
replicas (``explain_files``)."""
