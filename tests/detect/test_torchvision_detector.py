"""torchvision person detectors: options, output conversion, weights loading and the missing-weights
error. Random weights only (nothing is downloaded)."""

from __future__ import annotations

import urllib.error

import cv2
import numpy as np
import pytest
import torch

from boxpose.detect import TorchvisionPersonDetector, build_detector
from boxpose.detect.torchvision_detector import default_weights_path
from tests.detect.helpers import CentreBoxDetector, coco_mini_images

SMALL = {"min_size": 96, "max_size": 128}  # fast on a CPU


@pytest.fixture(scope="module")
def images(realdata):
    return [cv2.imread(str(p)) for p in coco_mini_images(realdata, 3)]


@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v3_large", "fcos_resnet50_fpn"])
def test_random_detectors_run_batched_on_real_images(name, images):
    detector = TorchvisionPersonDetector(name, "random", score_thr=0.0, batch_size=2, **SMALL)
    boxes = detector(images)
    assert len(boxes) == len(images)
    for found in boxes:
        assert found.ndim == 2 and found.shape[1] == 5 and np.isfinite(found).all()
        assert (np.diff(found[:, 4]) <= 0).all()  # by decreasing score


def test_options_reach_the_torchvision_model():
    detector = TorchvisionPersonDetector("fasterrcnn_resnet50_fpn_v2", "random", score_thr=0.3, **SMALL)
    assert detector.model.roi_heads.score_thresh == 0.3
    assert detector.model.transform.min_size == (96,) and detector.model.transform.max_size == 128
    retina = TorchvisionPersonDetector("retinanet_resnet50_fpn_v2", "random", score_thr=0.4, **SMALL)
    assert retina.model.score_thresh == 0.4


class _FixedOutput(torch.nn.Module):
    """Stands in for a torchvision detector: records its inputs, returns fixed detections."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.inputs = outputs, []

    def forward(self, images):
        self.inputs.append(images)
        return self.outputs[: len(images)]


def test_person_boxes_are_kept_thresholded_and_converted_to_xywh():
    detector = TorchvisionPersonDetector("ssdlite320_mobilenet_v3_large", "random", score_thr=0.5)
    output = {
        "boxes": torch.tensor([[10.0, 20.0, 110.0, 220.0], [0, 0, 5, 5], [30, 40, 50, 100], [1, 1, 9, 9]]),
        "labels": torch.tensor([1, 3, 1, 1]),  # a person, a car, two persons
        "scores": torch.tensor([0.6, 0.99, 0.8, 0.4]),  # the last person is under the threshold
    }
    detector.model = _FixedOutput([output])
    image = np.zeros((240, 320, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    (boxes,) = detector([image])
    np.testing.assert_allclose(boxes, [[30, 40, 20, 60, 0.8], [10, 20, 100, 200, 0.6]], rtol=1e-6)
    (seen,) = detector.model.inputs[0]
    assert seen.shape == (3, 240, 320) and seen[0].min() == 1.0 and seen[2].max() == 0.0  # RGB in [0, 1]


def test_weights_from_a_file_give_the_same_detections(tmp_path, images):
    original = TorchvisionPersonDetector("ssdlite320_mobilenet_v3_large", "random", score_thr=0.0)
    path = tmp_path / "ssdlite.pth"
    torch.save(original.model.state_dict(), path)
    loaded = build_detector("ssdlite320_mobilenet_v3_large", str(path), score_thr=0.0)
    for a, b in zip(original(images[:1]), loaded(images[:1])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"do not fit fcos_resnet50_fpn"):
        build_detector("fcos_resnet50_fpn", str(path))


def test_missing_weights_name_the_file_the_url_and_the_option(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    assert default_weights_path("fasterrcnn_resnet50_fpn_v2") == expected
    with pytest.raises(FileNotFoundError) as info:
        build_detector("fasterrcnn_resnet50_fpn_v2", "default", download=False)
    message = str(info.value)
    for words in (
        str(expected),
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        "detector.weights=/path/to/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
    ):
        assert words in message

    def offline(url, dst, progress=True):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(
        FileNotFoundError, match=r"download failed.*Name or service not known.*detector\.weights="
    ):
        build_detector("fcos_resnet50_fpn", "default")
    with pytest.raises(
        FileNotFoundError, match=r"detector weights not found: /nowhere/w\.pth.*fcos_resnet50"
    ):
        build_detector("fcos_resnet50_fpn", "/nowhere/w.pth")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("yolo", "unknown detector 'yolo'; expected one of"),
        ("nonexistent_module_xyz:make", "cannot import make from nonexistent_module_xyz"),
        ("tests.detect.helpers:nothing_here", "cannot import nothing_here"),
    ],
)
def test_bad_detector_names_are_errors(name, words):
    with pytest.raises(ValueError) as info:
        build_detector(name)
    assert words in str(info.value)


def test_a_factory_detector_by_module_path():
    detector = build_detector("tests.detect.helpers:make_centre_box_detector", score_thr=0.1)
    assert isinstance(detector, CentreBoxDetector)


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match="score_thr must be in"):
        TorchvisionPersonDetector("ssdlite320_mobilenet_v3_large", "random", score_thr=1.5)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TorchvisionPersonDetector("ssdlite320_mobilenet_v3_large", "random", batch_size=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_like_on_cpu(images):
    cpu = TorchvisionPersonDetector("fcos_resnet50_fpn", "random", score_thr=0.0, **SMALL)
    cuda = TorchvisionPersonDetector("fcos_resnet50_fpn", "random", score_thr=0.0, device="cuda", **SMALL)
    cuda.model.load_state_dict(cpu.model.state_dict())
    for found in cuda(images):
        assert found.ndim == 2 and found.shape[1] == 5 and np.isfinite(found).all()
    batch = [torch.from_numpy(np.ascontiguousarray(images[0][:, :, ::-1])).permute(2, 0, 1) / 255.0]
    with torch.no_grad():
        top_cpu = cpu.model(batch)[0]["scores"][:10]
        top_cuda = cuda.model([batch[0].cuda()])[0]["scores"][:10].cpu()
    torch.testing.assert_close(top_cuda, top_cpu, atol=1e-3, rtol=1e-3)
