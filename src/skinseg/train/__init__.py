"""Training: slices from (image, labels) pairs, augmentation, losses and the training loop.

Typical use (``docs/training.md``)::

    slices = slices_from_pairs([(image, labels)], OCT_CLASSES)
    train_set, val_set = slices.split(val_fraction=0.2)
    info = new_model_info(slices, name="my OCT model", task="oct-layers")
    result = progress.run(train(train_set, val_set, "my.safetensors", start=info))

or from a training-set folder on disk (:mod:`skinseg.train.trainset`)::

    slices = TrainingSet.open_or_create("my_set", OCT_CLASSES, modality="oct").slices()
"""

from skinseg.train._mask_import import MASK_KINDS, import_mask_folder, read_mask
from skinseg.train.augment import Augmentation, augment, crop_only, oct_augmentation, rgb_augmentation
from skinseg.train.checkpoint import state_path
from skinseg.train.config import EpochReport, TrainConfig, TrainResult, TrainStep
from skinseg.train.dataset import (
    InMemorySlices,
    SliceKey,
    SliceSet,
    annotated_slices,
    block_split,
    slices_for_model,
    slices_from_pairs,
)
from skinseg.train.engine import DEFAULT_UNET, new_model_info, train
from skinseg.train.losses import frequency_class_weights, seed_class_weights, segmentation_loss
from skinseg.train.recipes import ALIGNED_INPUT, ALIGNED_UNET, aligned_config
from skinseg.train.trainset import AddReport, RemoveReport, TrainingSet, TrainingSetInfo, is_training_set

__all__ = [
    "ALIGNED_INPUT", "ALIGNED_UNET", "DEFAULT_UNET", "MASK_KINDS", "AddReport", "RemoveReport", "Augmentation", "EpochReport", "InMemorySlices", "SliceKey",
    "SliceSet", "TrainConfig", "TrainResult", "TrainStep", "TrainingSet", "TrainingSetInfo",
    "aligned_config", "annotated_slices", "augment", "block_split", "crop_only", "frequency_class_weights",
    "import_mask_folder", "is_training_set", "new_model_info", "oct_augmentation", "read_mask", "rgb_augmentation",
    "seed_class_weights", "segmentation_loss", "slices_for_model", "slices_from_pairs", "state_path", "train",
]
