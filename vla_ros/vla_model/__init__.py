"""The PyTorch driving model, datasets read from bags, training, distillation and export.

Pure PyTorch: nothing in this package imports ROS.
"""
