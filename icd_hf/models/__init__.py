"""CIFAR model zoo and timm backbones as transformers models."""
