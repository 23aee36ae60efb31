"""Render the example model cards in ``model_cards/examples/`` from their ``results.json``.

    python model_cards/generate_examples.py          # rewrite every examples/*/README.md
    python model_cards/generate_examples.py --check  # exit 1 if one is out of date with the templates

The templates live in the package (``icd_hf/hub/templates/``, shipped with the wheel); this folder only holds
documentation and these rendered examples, so there is one source of truth for the card text. The examples'
``results.json`` are those of real runs: the README's quick start (``python recipes/quickstart.py``: a
wrn_16_2 teacher and a resnet8 ICD+KD student on scikit-learn's digits, on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icd_hf.hub import render_model_card
from icd_hf.hub.card import model_name_for

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_NAMESPACE = "your-username"


def render_example(example_dir: Path, paper_dir: str | Path | None = None) -> str:
    """The card text of one example folder, as ``icd-hf export --hub_model_id your-username/<name>`` writes it."""
    results = json.loads((example_dir / "results.json").read_text())
    hub_model_id = f"{EXAMPLE_NAMESPACE}/{model_name_for(results)}"
    return str(render_model_card(results, hub_model_id=hub_model_id, paper_dir=paper_dir)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the examples are up to date")
    parser.add_argument("--paper_dir", default=None, help="the paper's CSV tables (default <repo>/../shared/paper)")
    args = parser.parse_args(argv)
    stale = []
    for example_dir in sorted(p.parent for p in EXAMPLES_DIR.glob("*/results.json")):
        text = render_example(example_dir, args.paper_dir)
        card_path = example_dir / "README.md"
        if card_path.is_file() and card_path.read_text() == text:
            continue
        stale.append(card_path)
        if not args.check:
            card_path.write_text(text)
            print(f"wrote {card_path}")
    if args.check and stale:
        print("out of date (run python model_cards/generate_examples.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
