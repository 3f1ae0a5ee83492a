"""Naive classification: keyword definitions, the image classifier and its helpers.

The public entry points keep the original CLEO names: ``definitions`` (``load_definitions``,
``classes``, ``synonyms_extended``) and ``helpers`` (``load_model``, ``predict_image_path_dict``,
``predict_items``). Each lives in its own module; nothing heavy is imported here.
"""

# Constants the CLI shows in --help live here, not beside the code that uses them, so that
# building the parser does not import torch.
RUNTIMES = ("auto", "torch", "onnx")
DEFAULT_OPSET = 18  # the lowest opset torch's exporter implements without a lossy conversion
