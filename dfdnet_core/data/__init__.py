"""Data set loaders that read the real on-disk formats.

Every loader is a sequence-like class (``len(ds)``, ``ds[i]``, iteration) built from a root folder;
RGB-D data sets return :class:`RgbdSample`, focal-stack data sets :class:`StackSample`. Open one by
name with :func:`open_dataset`; :data:`DATASETS` lists the names. Depth is float32 planar metres
with NaN = no depth. Inspect a folder with ``python -m dfdnet_core.data.inspect <name> <root>``.
"""

from dfdnet_core.data.base import IndexedDataset, SampleIndexError
from dfdnet_core.data.pfm import read_pfm, write_pfm
from dfdnet_core.data.registry import DATASETS, dataset_options, open_dataset
from dfdnet_core.data.sample import RgbdSample, StackSample

__all__ = [
    "DATASETS",
    "IndexedDataset",
    "RgbdSample",
    "SampleIndexError",
    "StackSample",
    "dataset_options",
    "open_dataset",
    "read_pfm",
    "write_pfm",
]
