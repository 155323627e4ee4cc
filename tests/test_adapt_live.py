"""A long-lived reader (what `soundseek serve` holds) follows `soundseek adapt` run by another
process: after its refresh it answers exactly as an index opened afresh (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import needs_shared


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_reader_follows_adapt_and_revert_in_another_process(tmp_path):
    from test_name_memory import wolf_library

    from soundseek import Index
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.apply import adapt_and_install, revert

    wolf_library(tmp_path).close()
    q = "a wolf howling"

    def ranked(idx):
        return [(Path(h.path).name, round(h.score, 5)) for h in idx.search(q, k=8, mode="content", group=False)]

    reader = Index.open(tmp_path / "idx")
    base = ranked(reader)  # the reader has loaded the base model's text side

    class Wrapped:  # what the server's query batching puts around the encoder
        def __init__(self, inner):
            self.inner = inner

        def encode(self, texts, **kw):
            return self.inner.encode(texts, **kw)

    wrapped = reader.text_path.wrap_encoder(Wrapped)
    writer = Index.open(tmp_path / "idx")
    # the text heads tuned too, and kept whatever the check says: the text side changes
    report = adapt_and_install(writer, AdaptConfig(epochs=2, min_named_files=10, min_groups=4, min_gain=-1.0,
                                                   train_text=True), progress=False)
    assert report.kept
    reader.refresh()
    fresh = Index.open(tmp_path / "idx")
    assert reader.model_spec == fresh.model_spec == str(tmp_path / "idx" / "adapted")
    assert ranked(reader) == ranked(fresh) != base
    assert reader.text_path.encoder() is wrapped  # the batching wrapper survives the reload
    fresh.close()
    revert(writer)
    writer.close()
    reader.refresh()
    assert reader.model_spec == "default" and ranked(reader) == base
    reader.close()
