"""Model artifacts, trusted by hash only: weights as safetensors (never pickle) and ONNX exports.

A deployed model is pinned by the SHA-256 of its file in the node's parameters. A file that is
missing or whose hash differs is refused with a message naming the file and both hashes, so a
swapped or corrupted model cannot drive.
"""

import hashlib
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from vla_model.config import ModelConfig
from vla_model.student_network import build_network
from vla_model.teacher_network import PrivilegedTeacher, TeacherConfig

TEACHER_METADATA_KEY = 'teacher_config'


class ArtifactError(RuntimeError):
    """A model file that may not be used: missing, unreadable, or not the pinned one."""


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected_sha256: str | None) -> str:
    """Check a model file exists and, when a hash is pinned, matches it; return its hash."""
    if not path.is_file():
        raise ArtifactError(f'model file {path} does not exist')
    actual = sha256_file(path)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ArtifactError(
            f'model file {path} has SHA-256 {actual}, but {expected_sha256} is '
            'pinned: refusing to load it'
        )
    return actual


def save_weights(model: nn.Module, path: Path) -> str:
    """Write the weights and the model configuration as safetensors; return the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path), metadata={'config': model.config.to_json()})
    return sha256_file(path)


def load_weights(path: Path, expected_sha256: str | None = None) -> nn.Module:
    """Build the network a safetensors file describes and load its weights, in eval mode."""
    verify(path, expected_sha256)
    with safe_open(str(path), framework='pt') as handle:
        metadata = handle.metadata() or {}
    if 'config' not in metadata:
        raise ArtifactError(f'model file {path} has no model configuration in its metadata')
    model = build_network(ModelConfig.from_json(metadata['config']))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def save_teacher(model: PrivilegedTeacher, path: Path) -> str:
    """Write the privileged teacher's weights and configuration; return the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path), metadata={TEACHER_METADATA_KEY: model.config.to_json()})
    return sha256_file(path)


def teacher_config_of(path: Path) -> TeacherConfig:
    """Read the teacher configuration a safetensors file was saved with."""
    with safe_open(str(path), framework='pt') as handle:
        metadata = handle.metadata() or {}
    if TEACHER_METADATA_KEY not in metadata:
        raise ArtifactError(f'{path} is not a privileged teacher (no {TEACHER_METADATA_KEY})')
    try:
        return TeacherConfig.from_json(metadata[TEACHER_METADATA_KEY])
    except ValueError as error:
        raise ArtifactError(f'{path}: {error}') from None


def load_teacher(path: Path, expected_sha256: str | None = None) -> tuple[PrivilegedTeacher, str]:
    """Build the teacher a safetensors file describes, load it in eval mode; also its hash."""
    sha256 = verify(path, expected_sha256)
    model = PrivilegedTeacher(teacher_config_of(path))
    model.load_state_dict(load_file(str(path)))
    return model.eval(), sha256
