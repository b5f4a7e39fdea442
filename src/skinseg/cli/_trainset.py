"""``skinseg trainset add|remove|info``: build, grow, prune and inspect a training-set folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from skinseg import io, progress
from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES
from skinseg.cli._args import add_pixel_size, pixel_size
from skinseg.errors import SkinsegInputError
from skinseg.train import MASK_KINDS, AddReport, TrainingSet, import_mask_folder, is_training_set, read_mask

CLASS_TABLES = {"oct": OCT_CLASSES, "tissue": TISSUE_CLASSES, "nerves": NERVE_CLASSES}
"""``--classes`` choices."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trainset", help="build, grow, prune or inspect a training set (a folder of annotated slices)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", help="add (image, labels) pairs or a folder of images and masks; creates the set if needed",
        description="Add the annotated slices of images to a training set. Give IMAGES with --labels "
                    "(one labels file each, same order), or --images-dir with --masks-dir.",
    )
    add.add_argument("trainset", help="training-set folder (created if it holds no set)")
    add.add_argument("images", nargs="*", help="image files: OCT B-scans/tomograms or RGB images")
    add.add_argument("--labels", nargs="+", default=[], metavar="LABELS", help="one labels/mask file per image")
    add.add_argument("--images-dir", help="folder of images, paired with --masks-dir by file name")
    add.add_argument("--masks-dir", help="folder of masks named like the images")
    add.add_argument("--mask-kind", choices=MASK_KINDS, default="labels",
                     help="labels: class values; epidermis-band: 0/255 epidermis band (OCT), "
                          "converted per column to air / epidermis / dermis (default: labels)")
    add_pixel_size(add, "[slice] rows columns")
    add.add_argument("--classes", choices=sorted(CLASS_TABLES),
                     help="class table of a new set (default: oct for grey images, tissue for RGB)")
    add.add_argument("--context", type=int, default=0,
                     help="new OCT set: also keep K unannotated B-scans each side (for neighbour channels)")
    add.set_defaults(func=run_add)
    remove = actions.add_parser(
        "remove", help="take pairs out of a training set (their folders move to its backups/)",
        description="Remove pairs, by the ids that `skinseg trainset info` lists (e.g. p0003), from a "
                    "training set. Nothing is deleted: the pair folders move to the set's backups/ folder.",
    )
    remove.add_argument("trainset", help="training-set folder")
    remove.add_argument("pair_ids", nargs="+", metavar="PAIR_ID", help="pair ids, e.g. p0003")
    remove.set_defaults(func=run_remove)
    info = actions.add_parser("info", help="print what a training set holds, pair by pair")
    info.add_argument("trainset", help="training-set folder")
    info.set_defaults(func=run_info)


def _check_inputs(args: argparse.Namespace) -> None:
    folders = args.images_dir or args.masks_dir
    if bool(args.images) == bool(folders):
        raise SkinsegInputError("give IMAGES with --labels, or --images-dir with --masks-dir (not both).")
    if folders and not (args.images_dir and args.masks_dir):
        raise SkinsegInputError("--images-dir and --masks-dir go together; give both.")
    if args.images and len(args.labels) != len(args.images):
        raise SkinsegInputError(
            f"{len(args.images)} image(s) but {len(args.labels)} labels file(s); give one --labels file per image."
        )


def _open_set(args: argparse.Namespace, first_image: Path) -> TrainingSet:
    """The set in ``args.trainset``; a new one takes its modality from the first image."""
    if is_training_set(args.trainset):
        found = TrainingSet.open(args.trainset)
        if args.classes and CLASS_TABLES[args.classes] != found.class_table:
            raise SkinsegInputError(
                f"{args.trainset}: this set uses classes '{found.class_table.name}', not '{args.classes}'."
            )
        return found
    modality = "rgb" if io.claims_rgb(first_image) else "oct"
    table = CLASS_TABLES[args.classes or ("tissue" if modality == "rgb" else "oct")]
    print(f"new {modality} training set with classes '{table.name}': {args.trainset}")
    return TrainingSet.create(args.trainset, table, modality=modality, context=args.context)


def _first_image(args: argparse.Namespace) -> Path:
    if args.images:
        return Path(args.images[0])
    files = sorted(p for p in Path(args.images_dir).glob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise SkinsegInputError(f"{args.images_dir}: no image files here.")
    return files[0]


def run_add(args: argparse.Namespace) -> int:
    _check_inputs(args)
    size = pixel_size(args)
    trainset = _open_set(args, _first_image(args))
    if args.images_dir:
        work = import_mask_folder(trainset, args.images_dir, args.masks_dir, kind=args.mask_kind,
                                  pixel_size_um=size)
        report = progress.run(work, progress.cli_bar("adding", unit="image"))
    else:
        report = AddReport(trainset.folder)
        for image_path, labels_path in zip(args.images, args.labels):
            read = io.read_rgb if io.claims_rgb(image_path) else io.read_oct  # add() refuses the wrong kind
            image = read(image_path, pixel_size_um=size)
            labels = read_mask(labels_path, args.mask_kind, trainset.class_table)
            report += trainset.add(image, labels, source=str(Path(image_path).resolve()))
    print(report)
    info = trainset.info()
    print(f"the set now holds {info.n_slices} annotated slice(s) in {info.n_pairs} pair(s)")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    trainset = TrainingSet.open(args.trainset)
    print(trainset.remove(args.pair_ids))
    info = trainset.info()
    print(f"the set now holds {info.n_slices} annotated slice(s) in {info.n_pairs} pair(s)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    info = TrainingSet.open(args.trainset).info()
    print(info)
    print("  pairs (id, annotated slices, source):" if info.pairs else "  no pairs yet", *info.pair_lines(), sep="\n")
    return 0
