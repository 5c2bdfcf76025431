"""One module per notebook, named after it: the measurements and figures that lesson needs.

Each imports only the core layers (settings, data, models, losses, training, metrics,
recipes, plotting; notebook 04's also the explorers), never another lesson.
"""
