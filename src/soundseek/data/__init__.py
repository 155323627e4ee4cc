"""Dataset loaders: every loader returns ``list[AudioCaptions]`` (see ``types.py``).

* ``captions_csv.load_caption_csv`` - the user training format (``file,caption_1..N[,split,...]``)
* ``sfx_corpus.load_sfx_corpus`` - the default model's shipped corpus captions
* ``clotho.load_clotho``, ``audiocaps.load_audiocaps``, ``sounddescs.load_sounddescs`` - benchmarks
* ``common.filter_by_ids`` - keep the items named in a split list
"""

from .common import MissingAudioWarning, filter_by_ids, read_id_list
from .types import AudioCaptions

__all__ = ["AudioCaptions", "MissingAudioWarning", "filter_by_ids", "read_id_list"]
