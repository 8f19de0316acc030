"""docs/NODES.md is generated from the config dataclasses: it must not drift from them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_nodes_doc_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_node_docs", ROOT / "tools" / "gen_node_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "NODES.md").read_text() == module.render(), "run: python tools/gen_node_docs.py"
