"""``skinseg train TRAINSET -o MODEL.safetensors``: fine-tune or train a model on a training set."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from skinseg import progress
from skinseg.errors import SkinsegInputError
from skinseg.models.files import ModelInfo, read_model_info
from skinseg.models.registry import resolve_model
from skinseg.train import (
    ALIGNED_INPUT,
    ALIGNED_UNET,
    DEFAULT_UNET,
    EpochReport,
    InMemorySlices,
    TrainConfig,
    TrainingSet,
    aligned_config,
    new_model_info,
    train,
)


RECIPES = ("plain", "aligned")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a segmentation model on a training set (skinseg trainset add)")
    p.add_argument("trainset", help="training-set folder")
    p.add_argument("-o", "--output", required=True, help="model file to write, e.g. my_layers.safetensors")
    p.add_argument("--from", dest="start", metavar="builtin|PATH|scratch",
                   help="model to fine-tune (builtin, a user model name or a .safetensors file) or scratch "
                        "(default: the built-in model of the set's classes if there is one, else scratch)")
    p.add_argument("--recipe", choices=RECIPES, default="plain",
                   help="from scratch: 'plain' (whole-depth patches, the settings below) or 'aligned' (OCT: "
                        "B-scans flattened to the skin surface, neighbour B-scans as channels, a wider U-Net, "
                        "150 epochs of 160 x 512 windows, batch 2, learning rate 2e-3, averaged weights; the best "
                        "found on real B-scans; needs a set made with --context 1); options given override it")
    p.add_argument("--epochs", type=int, help="most epochs (default 100)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="slices held out for validation, by blocks (0.2)")
    p.add_argument("--learning-rate", type=float, help="AdamW rate (default 1e-4 to fine-tune, 1e-3 from scratch)")
    p.add_argument("--patience", type=int, help="stop after N epochs without a lower val loss (10)")
    p.add_argument("--batch-size", type=int, help="patches per batch (8)")
    p.add_argument("--patch", type=int, nargs=2, metavar=("ROWS", "COLS"),
                   help="training patch size (256 256)")
    p.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: every training slice once)")
    default_channels = " ".join(map(str, DEFAULT_UNET["channels"]))
    p.add_argument("--unet-channels", type=int, nargs="+", metavar="C",
                   help=f"from scratch: U-Net channels per level (default {default_channels})")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="run the training steps through torch.compile: epochs about 1.2x faster on a CPU after "
                        "30-70 s of compiling; needs a C++ compiler, else training warns and goes on "
                        "uncompiled (default: on for --recipe aligned, off otherwise)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, data and settings: same model on CPU)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted training of OUTPUT")
    p.set_defaults(func=run)


def _slices_and_start(
    trainset: TrainingSet, args: argparse.Namespace
) -> tuple[InMemorySlices, ModelInfo | Path | None, bool]:
    """(slices, what to start from (None: resume), whether that is a fresh network)."""
    task = trainset.class_table.name
    if args.resume:
        if not Path(args.output).is_file():
            raise SkinsegInputError(f"{args.output}: no model file here, nothing to resume; run without --resume.")
        info = read_model_info(args.output)
        return trainset.slices(model=info), None, False
    spec = args.start
    if spec is None and args.recipe != "plain":
        spec = "scratch"
    if spec is None:
        try:
            spec = str(resolve_model("builtin", task).path)
        except SkinsegInputError:
            spec = "scratch"
        print(f"starting from: {'scratch' if spec == 'scratch' else 'the built-in model'} (choose with --from)")
    if spec != "scratch":
        if args.recipe != "plain":
            raise SkinsegInputError(f"--recipe {args.recipe} trains from scratch: add --from scratch.")
        entry = resolve_model(spec, task)
        return trainset.slices(model=entry.info), entry.path, False
    aligned = args.recipe == "aligned"
    slices = trainset.slices(**ALIGNED_INPUT) if aligned else trainset.slices()
    arguments = dict(ALIGNED_UNET if aligned else DEFAULT_UNET)
    if args.unet_channels:
        arguments.update(channels=args.unet_channels, strides=[2] * (len(args.unet_channels) - 1))
    info = new_model_info(slices, name=Path(args.output).stem, task=task, arguments=arguments,
                          pixel_size_um=trainset.info().pixel_size_um)
    return slices, info, True


def _config(args: argparse.Namespace, scratch: bool) -> TrainConfig:
    """The recipe's settings, with the options given on the command line."""
    aligned = args.recipe == "aligned"  # from scratch, or resuming such a training
    base = aligned_config() if aligned else TrainConfig(learning_rate=1e-3 if scratch else 1e-4)
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "patch": args.patch and tuple(args.patch),
             "steps_per_epoch": args.steps_per_epoch, "learning_rate": args.learning_rate,
             "patience": args.patience, "compile": args.compile}
    changes = {key: value for key, value in given.items() if value is not None}
    return replace(base, **changes, seed=args.seed, device=args.device)


def _epoch_line(r: EpochReport) -> str:
    dice = ", ".join(f"{name} {d:.3f}" for name, d in r.val_dice.items() if d == d)  # skip NaN
    best = "  (best so far, saved)" if r.improved else ""
    return (f"epoch {r.epoch}: train loss {r.train_loss:.4f}, val loss {r.val_loss:.4f}, "
            f"val Dice {dice}, lr {r.learning_rate:.2g}, {r.seconds:.1f} s{best}")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    trainset = TrainingSet.open(args.trainset)
    slices, start, scratch = _slices_and_start(trainset, args)
    train_set, val_set = slices.split(args.val_fraction)
    config = _config(args, scratch)
    data = {"training_set": str(Path(args.trainset).resolve()), "slices": len(slices),
            "train_slices": len(train_set), "val_slices": len(val_set), "val_fraction": args.val_fraction}
    print(f"{len(train_set)} training and {len(val_set)} validation slice(s) from {args.trainset}")
    work = train(train_set, val_set, args.output, start=start, config=config, resume=args.resume, data=data)
    bar = progress.cli_bar("training", unit="batch")
    try:
        for step in work:
            bar(*step)
            if step.report is not None:
                tqdm.write(_epoch_line(step.report))
    except KeyboardInterrupt:
        work.close()  # the engine writes the best model so far with its history
        if Path(args.output).is_file():
            print(f"interrupted: the best model so far is kept in {args.output}; "
                  "continue with the same command and --resume.")
        else:
            print("interrupted before the first epoch ended: no model written.")
        return 130
    result = read_model_info(args.output).training
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']} ({result['stopped']}): "
          f"val loss {result['best_val_loss']:.4f}")
    print(f"model written to {args.output}; use it with: skinseg segment IMAGE -o LABELS --method {args.output}")
    return 0
