from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version: dict = {}
exec((here / "icd_hf" / "version.py").read_text(), version)

setup(
    name="icd-hf",
    version=version["__version__"],
    description="Invariant Consistency Distillation (ICD, also published as DCD: Discriminative and Consistent "
    "Representation Distillation) and 14 baselines, the Hugging Face way.",
    keywords=["knowledge-distillation", "icd", "dcd", "invariant-consistency-distillation",
              "discriminative-and-consistent-representation-distillation", "crd", "repdistiller", "cifar100",
              "transformers"],
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["icd_hf", "icd_hf.*"]),
    package_data={"icd_hf": ["hub/templates/*.md", "configs/*.yaml", "py.typed"]},
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "transformers>=5.0,<6",
        "datasets>=3.0",
        "accelerate>=1.0",
        "timm>=1.0",
        "safetensors>=0.4",
        "huggingface_hub>=0.30",
        "numpy>=1.24",
        "pillow>=10",
        "PyYAML>=6",
        "matplotlib>=3.7",
        "scikit-learn>=1.3",
        "tqdm>=4.60",
    ],
    extras_require={
        "dev": ["pytest>=8", "ruff>=0.5"],
        "trackers": ["tensorboard", "wandb"],
        "onnx": ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"],  # icd-hf export --onnx [--int8]
    },
    entry_points={"console_scripts": ["icd-hf=icd_hf.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
