"""The `ganesha-ha` command (console script, and `python -m ganesha_ha`).

`ganesha-ha lab ...` belongs to the lab (ganesha_ha.lab.cli), everything else to the product
CLI (ganesha_ha.cli). The split is made here, above both, so that the product CLI never
imports the lab: the lab is the product's demo and proof, a layer on top of it
(tests/unit/test_layers.py holds the layering).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from . import cli
from .cli_args import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    cut = cli.lab_split(raw)
    if cut is None:
        return cli.main(raw)
    args = build_parser().parse_args(raw[:cut + 1])  # --help, --config before `lab`
    from .lab.cli import main as lab_main

    return lab_main(raw[cut + 1:], config=args.config)


if __name__ == "__main__":
    sys.exit(main())
