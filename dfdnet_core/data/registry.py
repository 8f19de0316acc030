"""The data set registry: one name per on-disk format, one loader class per name."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from dfdnet_core.data.arkitscenes import ARKitScenesDataset
from dfdnet_core.data.base import IndexedDataset
from dfdnet_core.data.ddff12 import DDFF12Dataset
from dfdnet_core.data.dfd_indoor import DfdIndoorDataset
from dfdnet_core.data.focal_stack_folder import FocalStackFolderDataset
from dfdnet_core.data.fod500 import FoD500Dataset
from dfdnet_core.data.hypersim import HypersimDataset
from dfdnet_core.data.ibims import IBims1Dataset
from dfdnet_core.data.middlebury import Middlebury2014Dataset
from dfdnet_core.data.nyuv2 import NYUv2Dataset
from dfdnet_core.data.tartanair import TartanAirDataset
from dfdnet_core.data.zedd import ZeddDataset
from dfdnet_core.errors import ConfigError

#: name -> loader class; RGB-D sets return RgbdSample, stack sets StackSample (class ``kind``).
DATASETS: dict[str, type[IndexedDataset[Any, Any]]] = {
    "hypersim": HypersimDataset,
    "arkitscenes": ARKitScenesDataset,
    "tartanair": TartanAirDataset,
    "ibims1": IBims1Dataset,
    "nyuv2": NYUv2Dataset,
    "dfd_indoor": DfdIndoorDataset,
    "middlebury2014": Middlebury2014Dataset,
    "ddff12": DDFF12Dataset,
    "fod500": FoD500Dataset,
    "zedd": ZeddDataset,
    "focal_stack_folder": FocalStackFolderDataset,
    # Mobile Depth stacks are image folders with focus_distance.txt: same loader, own name.
    "mobile_depth": FocalStackFolderDataset,
}


def dataset_options(name: str) -> list[str]:
    """Keyword options accepted by the loader ``name`` (besides ``root``)."""
    cls = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root")]


def open_dataset(name: str, root: str | Path, **options: Any) -> IndexedDataset[Any, Any]:
    """Open the data set ``name`` stored under ``root`` with loader-specific ``options``.

    Raises:
        ConfigError: unknown data set name or unknown option (both quoted, with what is known).
        DataError: the files under ``root`` are missing or not in the data set's format.
    """
    cls = _lookup(name)
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for data set {name!r}; known: {allowed}")
    return cls(root, **options)


def _lookup(name: str) -> type[IndexedDataset[Any, Any]]:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown data set {name!r}; known: {sorted(DATASETS)}") from None
