#!/usr/bin/env python
"""Linear-probe transfer (paper table 3): freeze a model, fit a linear classifier on its features of another dataset.

    python recipes/linear_probe.py --model runs/wrn_40_2__wrn_16_2 --dataset stl10 --data_dir /data/stl10_binary \\
        --image_size 32 --output runs/wrn_40_2__wrn_16_2/linear_probe_stl10.json
    python recipes/linear_probe.py --model runs/wrn_40_2__wrn_16_2 --dataset tiny-imagenet \\
        --data_dir /tmp/data/tiny-imagenet-200 --image_size 32

``--model`` is a run directory (its ``student/`` is used), a ``save_pretrained``/exported folder, a Hub id or a
zoo name (a randomly initialised network: the random-feature baseline). Features are extracted once per
model and dataset and cached under ``--cache_dir``; the probe itself takes seconds. The JSON written holds the
top-1/top-5 of the probe and every setting used.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from icd_hf.evaluation import extract_features, train_linear_probe
from icd_hf.evaluation.loading import load_eval_datasets, load_eval_model, model_normalization

logger = logging.getLogger("linear_probe")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="linear_probe.py", description=__doc__.split("\n")[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="run directory, save_pretrained folder, Hub id or zoo name")
    parser.add_argument("--dataset", required=True, help="stl10, tiny-imagenet, cifar100, digits, a Hub id or a path")
    parser.add_argument("--data_dir", default=None, help="local copy of the dataset (original layout)")
    parser.add_argument("--image_size", type=int, default=32, help="resize images to this side (0: keep)")
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--eval_split", default="test", help="'test' also finds 'val'/'validation' (TIN-200)")
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument("--normalization", choices=("target", "source"), default="target",
                        help="normalise images with the target dataset's mean/std, or with those the model was "
                             "trained with (read from its results.json / preprocessor_config.json)")
    parser.add_argument("--batch_size", type=int, default=256, help="feature-extraction batch size")
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache_dir", default=".cache/features", help="feature cache folder ('' to disable)")
    parser.add_argument("--epochs", type=int, default=100, help="linear-probe epochs")
    parser.add_argument("--lr", type=float, default=1e-3, help="linear-probe AdamW learning rate")
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--probe_batch_size", type=int, default=256, help="0 for full-batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="JSON to write (default: <model dir>/linear_probe_<dataset>.json"
                                                       " for a local model, else linear_probe_<dataset>.json)")
    parser.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return parser.parse_args(argv)


def default_output(model: str, dataset: str) -> Path:
    name = f"linear_probe_{Path(dataset).name.replace('/', '_')}.json"
    return Path(model) / name if Path(model).is_dir() else Path(name)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.time()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    normalization = None
    if args.normalization == "source":
        normalization = model_normalization(args.model)
        if normalization is None:
            raise SystemExit(
                f"--normalization source: {args.model} records no training mean/std (no results.json or "
                f"preprocessor_config.json); use --normalization target."
            )
    train_ds, eval_ds, info = load_eval_datasets(
        args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size or None,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        train_split=args.train_split,
        eval_split=args.eval_split,
        normalization=normalization,
    )
    torch.manual_seed(args.seed)  # a zoo name builds a random network: the same one for the same seed
    model = load_eval_model(args.model)
    cache = args.cache_dir or None
    common = dict(batch_size=args.batch_size, device=device, cache_path=cache, num_workers=args.num_workers,
                  progress=not args.no_progress)
    train_x, train_y = extract_features(model, train_ds, desc=f"{info.name} {info.train_split}", **common)
    test_x, test_y = extract_features(model, eval_ds, desc=f"{info.name} {info.eval_split}", **common)
    probe = train_linear_probe(
        train_x, train_y, test_x, test_y,
        epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
        batch_size=args.probe_batch_size or None, seed=args.seed, num_classes=info.num_classes, device=device,
    )
    result = {
        "model": args.model,
        "model_class": type(model).__name__,
        "dataset": {"name": info.name, "num_classes": info.num_classes, "image_size": info.image_size,
                    "train_split": info.train_split, "eval_split": info.eval_split,
                    "num_train": int(train_y.numel()), "num_eval": int(test_y.numel()),
                    "mean": list(info.mean), "std": list(info.std), "normalization": args.normalization},
        "top1": probe["top1"],
        "top5": probe["top5"],
        "probe": probe,
        "command": " ".join(["python", "recipes/linear_probe.py", *(sys.argv[1:] if argv is None else argv)]),
        "wall_time_s": round(time.time() - start, 1),
        "device": device,
    }
    output = Path(args.output) if args.output else default_output(args.model, info.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    logger.info("linear probe on %s: top-1 %.2f%% (top-5 %.2f%%) -> %s", info.name, probe["top1"], probe["top5"],
                output)
    return result


if __name__ == "__main__":
    main()
