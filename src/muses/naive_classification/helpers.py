"""The original's ``helpers`` module: set up, train, load and predict, with its names.

    clf = setup_classifier(224, mode="train", dataset="datasets/naive")
    clf.unfreeze_layers(0); clf.set_optimizer(1e-3); clf.train_model(30, save=False)
    clf.unfreeze_layers(4); clf.set_optimizer(5e-5); clf.train_model(20, model_name="naive")
    predict_image_path_dict(["photo1.jpg", "photo2.jpg"])  # OrderedDict class -> probability

The code lives in :mod:`muses.model`.
"""
from muses.model.classifier import Classifier
from muses.model.loading import load_model, predict_image_path_dict, predict_items, setup_classifier

__all__ = ["Classifier", "load_model", "predict_image_path_dict", "predict_items", "setup_classifier"]
