"""Data sets and loaders: ImageFolder and COCO readers, the synthetic sets, samplers, and the
checks that keep untrusted data files from hurting a run."""
