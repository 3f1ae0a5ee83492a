"""Naive classification: keyword definitions, the image classifier and its helpers.

The public entry points keep the original CLEO names: ``definitions`` (``load_definitions``,
``classes``, ``synonyms_extended``) and ``helpers`` (``load_model``, ``predict_image_path_dict``,
``predict_items``). Each lives in its own module; nothing heavy is imported here.
"""
