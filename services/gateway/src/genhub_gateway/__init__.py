"""genhub gateway service: the public API for apps, the admin API and the job read-model."""
