"""The HED nerve network: shapes, registration, model files, training through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skinseg.classes import NERVE_CLASSES
from skinseg.models.builders import ARCHITECTURES, build_network
from skinseg.models.files import load_model, save_model
from skinseg.models.hed import HED
from skinseg.progress import run
from skinseg.train import TrainConfig, new_model_info, slices_from_pairs, train


@pytest.mark.parametrize("shape", [(64, 64), (37, 50), (1, 1)])
def test_fused_logits_have_the_input_size(shape):
    net = HED(3, 2, channels=(4, 8, 16)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *shape))
    assert out.shape == (2, 2, *shape)


def test_side_outputs_one_per_stage_and_fused():
    net = HED(3, 2, channels=(4, 8, 16)).eval()
    x = torch.rand(1, 3, 40, 24)
    with torch.no_grad():
        sides = net.side_outputs(x)
        fused = net(x)
        by_hand = net.fuse(torch.cat(sides, dim=1))
    assert [s.shape for s in sides] == [(1, 2, 40, 24)] * 3
    torch.testing.assert_close(fused, by_hand)
    assert not torch.allclose(sides[0], sides[2])  # different scales see different things


def test_registered_and_round_trips_through_a_model_file(tmp_path):
    assert ARCHITECTURES["hed"] is HED
    pairs = [(np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), np.uint8))]
    info = new_model_info(slices_from_pairs(pairs, NERVE_CLASSES), name="hed", task="biopsy-nerves",
                          architecture="hed", arguments={"channels": [4, 8]})
    net = info.build()
    path = save_model(tmp_path / "hed.safetensors", net, info)
    loaded, loaded_info = load_model(path)
    assert loaded_info.architecture == "hed" and loaded_info.arguments["in_channels"] == 3
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval()(x))
    assert isinstance(build_network("hed", {"channels": [4]}), HED)


def test_learns_a_fibre_with_dice_loss_through_the_engine(tmp_path):
    """A bright line on a dark image: one short run of the engine with Dice loss only."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, (48, 48, 3)).astype(np.uint8)
    labels = np.zeros((48, 48), np.uint8)
    labels[:, 20:23] = 1
    image[labels == 1] = (200, 120, 60)
    slices = slices_from_pairs([(image, labels)], NERVE_CLASSES)
    info = new_model_info(slices, name="hed", task="biopsy-nerves", architecture="hed",
                          arguments={"channels": [4, 8]})
    torch.manual_seed(0)
    before = info.build().eval()
    config = TrainConfig(epochs=5, batch_size=2, patch=(32, 32), steps_per_epoch=4, learning_rate=1e-2,
                         class_weights=None, lambda_ce=0.0, lambda_dice=1.0, device="cpu", patience=5)
    result = run(train(slices, slices, tmp_path / "hed.safetensors", start=info, config=config))
    first, best = result.history[0], min(h.val_loss for h in result.history)
    assert best < first.val_loss - 0.1
    with torch.no_grad():
        x = torch.from_numpy(slices.sample(0)[0])[None]
        pred = result.network(x).argmax(1)[0].numpy()
        assert (pred == labels).mean() > 0.95
        assert (before(x).argmax(1)[0].numpy() == labels).mean() < (pred == labels).mean()
