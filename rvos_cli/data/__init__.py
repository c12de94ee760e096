"""Datasets as they lie on disk, their preparation, transforms and batching."""

# Where `rvos prepare` writes inside a dataset root unless told otherwise; train, eval and viz look there.
PREPARED_DIRNAME = "rvos_prepared"
