"""tf_metaling: multilingual transformers with language-specific layers and meta-learning."""

from setuptools import find_packages, setup

# Exact pins: these resolve together on Python 3.11 (TensorFlow 2.21 does not
# resolve with tf-models-official). constraints.txt pins everything they pull in.
INSTALL_REQUIRES = [
    "tensorflow==2.20.0",
    "tensorflow-text==2.20.1",
    "tf-models-official==2.20.0",
    "tensorflow-serving-api==2.20.0",
    "keras==3.15.1",
    "tf-keras==2.20.1",
    "absl-py==1.4.0",
    "grpcio==1.85.3",
    "protobuf==7.36.2",
    "numpy==2.4.6",
    "pyyaml==6.0.4",
    "matplotlib==3.11.2",
    # The serving REST front end (serving/rest_service.py).
    "aiohttp==3.14.5",
    "scikit-learn==1.9.1",
    # Pretrained encoders (tf_metaling/models/pretrained.py): keras-hub reads backbones
    # from local preset directories; its Hugging Face-format loader needs safetensors,
    # which keras-hub does not install. keras-hub 0.32.0 pins kagglesdk 0.1.28, which
    # needs kaggle 2.2.1 (tf-models-official pulls kaggle in).
    "keras-hub==0.32.0",
    "safetensors==0.8.0",
    "kaggle==2.2.1",
    "kagglesdk==0.1.28",
    # The built-in encoder's SentencePiece model proto (tf_metaling/models/builtin_encoder.py).
    "sentencepiece==0.2.3",
]

TEST_REQUIRES = [
    "pytest==9.2.0",
    # Two test processes on two cores (Makefile PYTEST_ARGS: -n 2 --dist loadfile).
    "pytest-xdist==3.8.0",
]

setup(
    name="tf_metaling",
    version="0.1.0",
    description=(
        "Multilingual transformers with language-specific layers trained as "
        "meta-parameters (TensorFlow / Keras 3)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tf_metaling", "tf_metaling.*", "trainers", "serving"]),
    # The op allow-list that serving.op_check reads, and the TF Serving example configs.
    package_data={"serving": ["tf_text_2_12_ops.txt", "tf_serving/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={
        "console_scripts": [
            "tf-metaling-smoke=tf_metaling.smoke:run",
            "tf-metaling-pretrain=trainers.pretrain:run",
            "tf-metaling-finetune=trainers.finetune:run",
            "tf-metaling-experiments=trainers.experiments:run",
            "tf-metaling-analyze=trainers.analyze:run",
            "tf-metaling-export=serving.export:run",
            "tf-metaling-server=serving.server:run",
            "tf-metaling-client=serving.client:run",
        ]
    },
    license="Apache-2.0",
)
