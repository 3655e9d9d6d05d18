"""Instruction grounding by the training wording: an embedding becomes a mix of intent centroids.

A planner that reads the raw sentence embedding learns the few hundred points its training
wording occupies, not the space around them: the round-2 teacher drove held-out wording ("next
lane left, when you can", "follow the lead", "take the off-ramp ahead") as if it had been told
nothing (0 of 3, 0 of 3 and 1 of 9 episodes followed, against 4 of 4, 3 of 3 and 8 of 11 for
the other held-out wording of the same intents). Scoring the same embeddings against the
training wording (the mean of the cosine to an intent's centroid and to its nearest text) names
the intent of 44 of 48 wordings it was not built from (validation, test, and 16 written for
that measurement). So the network sees, in place of
the embedding, the intent centroids weighted by a softmax of those scores: wording it never saw
lands on the intent it most resembles, and the planner only ever reads points it was trained
on. The texts, their intents and the centroids are buffers, saved with the weights and exported
with the network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class InstructionGrounding(nn.Module):
    """Replace the first `width` values of an instruction input (a unit sentence embedding)."""

    def __init__(self, texts: int, intents: int, width: int, temperature: float) -> None:
        super().__init__()
        self.width = width
        self.temperature = temperature
        self.register_buffer('text_embeddings', torch.zeros(texts, width))
        self.register_buffer('text_intents', torch.zeros(texts, intents, dtype=torch.bool))
        self.register_buffer('intent_centroids', torch.zeros(intents, width))

    def fit(self, embeddings: np.ndarray, intents: list[str]) -> list[str]:
        """Store the training texts' unit embeddings and intents; return the intents' order.

        Raises ValueError when the counts differ from the buffers' shapes.
        """
        names = sorted(set(intents))
        if embeddings.shape != tuple(self.text_embeddings.shape) or len(names) != len(
            self.intent_centroids
        ):
            raise ValueError(
                f'grounding built for {tuple(self.text_embeddings.shape)} texts x width and '
                f'{len(self.intent_centroids)} intents, given {embeddings.shape} and {len(names)}'
            )
        unit = torch.from_numpy(embeddings).float()
        unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
        membership = torch.tensor([[intent == name for name in names] for intent in intents])
        centroids = (membership.float().T @ unit) / membership.sum(0, keepdim=True).T
        self.text_embeddings.copy_(unit)
        self.text_intents.copy_(membership)
        self.intent_centroids.copy_(centroids / centroids.norm(dim=1, keepdim=True))
        return names

    def scores(self, embedding: Tensor) -> Tensor:
        """(B, intents): mean of the cosine to each centroid and to its nearest training text."""
        unit = embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)
        to_centroids = unit @ self.intent_centroids.T
        to_texts = (unit @ self.text_embeddings.T)[:, :, None]
        nearest = to_texts.masked_fill(~self.text_intents[None], -2.0).amax(dim=1)
        return 0.5 * (to_centroids + nearest)

    def forward(self, instruction: Tensor) -> Tensor:
        """Return the instruction input with its embedding replaced by the centroids' mix."""
        weights = torch.softmax(self.scores(instruction[:, : self.width]) / self.temperature, 1)
        return torch.cat([weights @ self.intent_centroids, instruction[:, self.width :]], 1)
