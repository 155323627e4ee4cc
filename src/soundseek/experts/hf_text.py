"""Transformer text experts through ``transformers``: BERT-base and RoBERTa-large.

Sentence vectors: BERT-base uses its [CLS] token (as in the retrieval literature); RoBERTa-large
uses the attention-masked mean of its last layer (its <s> token is not trained as a sentence
summary).  ``encode(..., with_tokens=True)`` also returns the last-layer token features without
padding, for NetVLAD / MMT heads.

``random_init=True`` builds the published architecture from a config written here, with a
byte-level tokenizer built in memory, so shapes and speed can be tested without any download.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import TextExpert, TextFeatures, weights_tag
from .hf_quiet import quiet_weights
from .weights import get_source, resolve_hf

__all__ = ["HFTextConfig", "HFTextExpert", "offline_tokenizer", "BERT_BASE", "ROBERTA_LARGE"]


@dataclass(frozen=True)
class HFTextConfig:
    name: str
    family: str  # "bert" | "roberta"
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    pooling: str  # "cls" | "mean"
    max_length: int = 512


BERT_BASE = HFTextConfig("bert-base", "bert", 768, 12, 12, 3072, 30522, 512, "cls")
ROBERTA_LARGE = HFTextConfig("roberta-large", "roberta", 1024, 24, 16, 4096, 50265, 514, "mean")


def offline_tokenizer(style: str = "roberta", model_max_length: int = 512):
    """A byte-level tokenizer built in memory (260 ids), for random-weight models only.

    Real tokenizers come with the downloaded weights; this one lets tests and benchmarks run
    offline with inputs of realistic length (one id per UTF-8 byte).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if style == "bert":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        bos, eos, pad, unk = "[CLS]", "[SEP]", "[PAD]", "[UNK]"
    else:
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        bos, eos, pad, unk = "<s>", "</s>", "<pad>", "<unk>"
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in pre_tokenizers.ByteLevel.alphabet():
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   unk_token=unk, cls_token=bos, sep_token=eos, model_max_length=model_max_length)


def _random_model(cfg: HFTextConfig):
    if cfg.family == "bert":
        from transformers import BertConfig, BertModel

        conf = BertConfig(vocab_size=cfg.vocab, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                          num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                          max_position_embeddings=cfg.max_positions)
        return BertModel(conf, add_pooling_layer=False)
    from transformers import RobertaConfig, RobertaModel

    conf = RobertaConfig(vocab_size=cfg.vocab, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                         num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                         max_position_embeddings=cfg.max_positions, type_vocab_size=1, pad_token_id=1,
                         bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
    return RobertaModel(conf, add_pooling_layer=False)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def split_tokens(hidden: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    """Per-text (L_i, D) arrays without padding."""
    return [h[m.bool()].numpy().astype(np.float32) for h, m in zip(hidden, mask)]


class HFTextExpert(TextExpert):
    version = "1"

    def __init__(self, cfg: HFTextConfig, random_init: bool = False, weights: str | None = None,
                 seed: int = 0, batch_size: int = 32):
        self.cfg = cfg
        self.name = cfg.name
        self.dim = cfg.hidden
        self.token_dim = cfg.hidden
        self.batch_size = batch_size
        if random_init:
            torch.manual_seed(seed)
            self.model = _random_model(cfg)
            self.tokenizer = offline_tokenizer(cfg.family, cfg.max_length)
            self.version = f"random-s{seed}"
        else:
            from transformers import AutoModel, AutoTokenizer

            path = resolve_hf(cfg.name, weights)
            with quiet_weights():
                self.model = AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.weights_path = path
            self.tag_version(w=weights_tag(weights))
            self.source = get_source(cfg.name).source
            self.dim = self.token_dim = int(self.model.config.hidden_size)
        self.model.eval()

    @torch.inference_mode()
    def encode(self, texts: list[str], with_tokens: bool = False) -> TextFeatures:
        sentences, tokens = [], []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.cfg.max_length, return_tensors="pt")
            hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            if self.cfg.pooling == "cls":
                sentences.append(hidden[:, 0])
            else:
                sentences.append(masked_mean(hidden, batch["attention_mask"]))
            if with_tokens:
                tokens += split_tokens(hidden, batch["attention_mask"])
        sentence = torch.cat(sentences).numpy().astype(np.float32) if sentences else np.zeros((0, self.dim), np.float32)
        return TextFeatures(sentence=sentence, tokens=tokens)


def build_bert(random_init: bool = False, weights: str | None = None) -> HFTextExpert:
    return HFTextExpert(BERT_BASE, random_init=random_init, weights=weights)


def build_roberta(random_init: bool = False, weights: str | None = None) -> HFTextExpert:
    return HFTextExpert(ROBERTA_LARGE, random_init=random_init, weights=weights)
