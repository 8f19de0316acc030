"""Training DfDNet: config, loss, learning-rate schedule, sample stream and the training loop.

``dfdnet train --config <yaml>`` runs :func:`dfdnet_core.training.loop.train`; see
``configs/train_tiny.yaml`` for the recipe of the shipped model.
"""
