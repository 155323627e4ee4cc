"""The zoo: published pretrained models (PANNs, VGGish, PaSST, CLAP, BERT, RoBERTa) as data.

:data:`WEIGHTS` names each checkpoint (URL or Hugging Face repo, size, checksum, licence);
:data:`ZOO` says what each expert is (kind, dim, sample rate) and which module builds it.
Importing this module registers the zoo's experts (see :mod:`.registry`) without importing torch;
fetching and checking the files is :mod:`.weights`' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import register

__all__ = ["WeightSource", "WEIGHTS", "ZooInfo", "ZOO"]


@dataclass(frozen=True)
class WeightSource:
    """One published checkpoint.

    Exactly one of ``url`` (a single file) or ``hf_repo`` (a Hugging Face model repo) is set.
    ``sha256`` may be a full digest or a published prefix (torch-hub file names carry the first
    8 hex digits); ``md5`` is what Zenodo publishes.  Unknown checksums are recorded on first
    download (trust on first use) and checked from then on.
    """

    expert: str
    filename: str
    url: str | None = None
    hf_repo: str | None = None
    hf_revision: str = "main"
    size_bytes: int | None = None  # approximate for HF repos (main weight file)
    size_approx: bool = False  # size_bytes estimated (parameter count x 4 bytes), not published
    sha256: str | None = None
    md5: str | None = None
    homepage: str = ""
    license: str = ""
    notes: str = ""
    hf_files: tuple[str, ...] = field(default_factory=tuple)  # allow_patterns for snapshot_download

    @property
    def source(self) -> str:
        if self.hf_repo:
            return f"hf://{self.hf_repo}@{self.hf_revision}"
        return str(self.url)


WEIGHTS: dict[str, WeightSource] = {
    "panns-cnn14": WeightSource(
        expert="panns-cnn14",
        filename="Cnn14_mAP=0.431.pth",
        url="https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
        size_bytes=327_428_481,
        md5="541141fa2ee191a88f24a3219fff024e",
        homepage="https://github.com/qiuqiangkong/audioset_tagging_cnn",
        license="MIT (code), CC-BY 4.0 (Zenodo record 3987831)",
        notes="Kong et al. 2020, AudioSet mAP 0.431; checkpoint dict with key 'model'",
    ),
    "panns-resnet38": WeightSource(
        expert="panns-resnet38",
        filename="ResNet38_mAP=0.434.pth",
        url="https://zenodo.org/record/3987831/files/ResNet38_mAP%3D0.434.pth?download=1",
        size_bytes=295_000_000,  # float32 parameter count; Zenodo gives no size
        size_approx=True,
        md5="bf12f36aaabac4e0855e22d3c3239c1b",
        homepage="https://github.com/qiuqiangkong/audioset_tagging_cnn",
        license="MIT (code), CC-BY 4.0 (Zenodo record 3987831)",
        notes="Kong et al. 2020, AudioSet mAP 0.434; checkpoint dict with key 'model'",
    ),
    "vggish": WeightSource(
        expert="vggish",
        filename="vggish-10086976.pth",
        url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
        size_bytes=289_000_000,  # float32 parameter count
        size_approx=True,
        sha256="10086976",  # torch-hub naming: the file name carries the sha256 prefix
        homepage="https://github.com/harritaylor/torchvggish",
        license="Apache-2.0 (port of tensorflow/models research/audioset/vggish)",
        notes="Hershey et al. 2017; PyTorch port of the TF-Slim checkpoint; PCA post-processing not applied",
    ),
    "passt": WeightSource(
        expert="passt",
        filename="passt-s-f128-p16-s10-ap.476-swa.pt",
        url=(
            "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/"
            "passt-s-f128-p16-s10-ap.476-swa.pt"
        ),
        size_bytes=345_000_000,  # float32 parameter count
        size_approx=True,
        homepage="https://github.com/kkoutini/PaSST",
        license="Apache-2.0",
        notes="Koutini et al. 2022, PaSST-S (patch 16, stride 10, SWA), AudioSet mAP 0.476",
    ),
    "clap-audio": WeightSource(
        expert="clap-audio",
        filename="model.safetensors",
        hf_repo="laion/clap-htsat-unfused",
        size_bytes=614_000_000,
        homepage="https://huggingface.co/laion/clap-htsat-unfused",
        license="Apache-2.0",
        notes="Wu et al. 2023 (LAION-CLAP, HTS-AT audio tower); shared with clap-text",
        hf_files=("*.json", "*.txt", "*.safetensors", "merges.txt", "vocab.json"),
    ),
    "clap-text": WeightSource(
        expert="clap-text",
        filename="model.safetensors",
        hf_repo="laion/clap-htsat-unfused",
        size_bytes=614_000_000,
        homepage="https://huggingface.co/laion/clap-htsat-unfused",
        license="Apache-2.0",
        notes="RoBERTa-base text tower of LAION-CLAP; shared with clap-audio",
        hf_files=("*.json", "*.txt", "*.safetensors", "merges.txt", "vocab.json"),
    ),
    "bert-base": WeightSource(
        expert="bert-base",
        filename="model.safetensors",
        hf_repo="google-bert/bert-base-uncased",
        size_bytes=440_449_768,
        homepage="https://huggingface.co/google-bert/bert-base-uncased",
        license="Apache-2.0",
        notes="Devlin et al. 2019",
        hf_files=("config.json", "tokenizer*.json", "vocab.txt", "model.safetensors"),
    ),
    "roberta-large": WeightSource(
        expert="roberta-large",
        filename="model.safetensors",
        hf_repo="FacebookAI/roberta-large",
        size_bytes=1_421_700_000,
        homepage="https://huggingface.co/FacebookAI/roberta-large",
        license="MIT",
        notes="Liu et al. 2019",
        hf_files=("config.json", "tokenizer*.json", "vocab.json", "merges.txt", "model.safetensors"),
    ),
}


# ---------------------------------------------------------------------------------------------
# The zoo's registry entries.  Registered from this torch-free module so that listing experts
# (``soundseek models list``) stays fast; each factory imports its torch module on first use.
# Every factory takes ``random_init=True`` (published architecture, random weights, no files
# needed) and ``weights=PATH`` (a local checkpoint file, or a local Hugging Face model directory).


@dataclass(frozen=True)
class ZooInfo:
    name: str
    kind: str
    dim: int
    sample_rate: int | None
    module: str
    builder: str
    summary: str


ZOO: dict[str, ZooInfo] = {
    z.name: z
    for z in (
        ZooInfo("panns-cnn14", "audio", 2048, 32000, "panns", "build_cnn14",
                "PANNs CNN14 (AudioSet), 2048-d frames every 0.32 s at 32 kHz"),
        ZooInfo("panns-resnet38", "audio", 2048, 32000, "panns", "build_resnet38",
                "PANNs ResNet38 (AudioSet), 2048-d frames every 0.32 s at 32 kHz"),
        ZooInfo("vggish", "audio", 128, 16000, "vggish", "build",
                "VGGish (AudioSet / YouTube-8M), 128-d per 0.96 s at 16 kHz"),
        ZooInfo("passt", "audio", 768, 32000, "passt", "build",
                "PaSST-S (AudioSet), 768-d per 10-s snippet at 32 kHz"),
        ZooInfo("clap-audio", "audio", 512, 48000, "clap", "build_audio",
                "LAION-CLAP HTS-AT audio tower, 512-d CLAP space per 10 s at 48 kHz"),
        ZooInfo("clap-text", "text", 512, None, "clap", "build_text",
                "LAION-CLAP RoBERTa text tower, 512-d CLAP space + 768-d tokens"),
        ZooInfo("bert-base", "text", 768, None, "hf_text", "build_bert",
                "BERT-base uncased, 768-d [CLS] sentence vector + token features"),
        ZooInfo("roberta-large", "text", 1024, None, "hf_text", "build_roberta",
                "RoBERTa-large, 1024-d mean-pooled sentence vector + token features"),
    )
}


def _lazy_factory(info: ZooInfo):
    def factory(**kwargs):
        import importlib

        module = importlib.import_module(f"soundseek.experts.{info.module}")
        return getattr(module, info.builder)(**kwargs)

    factory.__name__ = f"build_{info.name.replace('-', '_')}"
    factory.__doc__ = f"{info.summary}. kwargs: random_init=False, weights=None."
    return factory


def _register_zoo() -> None:
    for info in ZOO.values():
        register(info.name, info.kind, info.summary, offline=False, dim=info.dim)(_lazy_factory(info))


_register_zoo()
