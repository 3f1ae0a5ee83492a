"""The image classifier: preprocessing, backbones, model files, feature cache, training and predictors.

Constants the CLI shows in --help live here, not beside the code that uses them, so that
building the parser does not import torch.
"""

RUNTIMES = ("auto", "torch", "onnx")
DEFAULT_OPSET = 18  # the lowest opset torch's exporter implements without a lossy conversion
