"""The shipped AudioSet ontology: complete, consistent, and covering every YAMNet class."""

from __future__ import annotations

import csv
import json

import pytest

from soundseek.experts import audioset as A
from soundseek.experts.yamnet import class_map_path, class_mids, class_names


def test_file_parses_with_632_classes_and_only_the_kept_fields():
    rows = json.loads(A.ONTOLOGY_FILE.read_text(encoding="utf-8"))
    assert len(rows) == A.N_ONTOLOGY_CLASSES == 632
    assert all(set(r) == {"id", "name", "description", "child_ids", "restrictions"} for r in rows)
    assert len({r["id"] for r in rows}) == 632 and len({r["name"] for r in rows}) == 632
    assert all(r["description"].strip() for r in rows)
    assert (A.ONTOLOGY_FILE.parent / "AUDIOSET_ONTOLOGY_LICENSE.md").is_file()


def test_every_child_id_resolves_and_parents_are_the_inverse():
    onto = A.load_ontology()
    assert len(onto) == 632
    for c in onto.classes.values():
        for child in c.child_ids:
            assert child in onto.classes, (c.id, child)
            assert c.id in [p.id for p in onto.parents(child)]
    assert [p.name for p in onto.parents("/m/05tny_")] == ["Dog"]  # Bark
    assert [p.name for p in onto.parents("/m/0ghcn6")] == ["Dog", "Cat", "Roaring cats (lions, tigers)",
                                                           "Canidae, dogs, wolves"]  # Growling
    assert onto.parents("/m/0dgw9r") == []  # Human sounds: a top-level class


def test_every_yamnet_class_maps_by_mid_with_the_same_name():
    with open(class_map_path(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 521
    onto = A.load_ontology()
    for r in rows:
        assert r["mid"] in onto.classes, r
        assert onto[r["mid"]].name == r["display_name"]
    assert len(class_mids()) == 521
    assert [onto[m].name for m in class_mids()] == list(class_names())


def test_descriptions_are_the_published_text():
    onto = A.load_ontology()
    assert onto["/m/05tny_"].description == (
        "Principal communication sound produced by dogs. Often transliterated as woof, especially for large dogs.")
    assert onto["/m/06bxc"].description.startswith('The sound of "spoken or chanted rhyming lyrics", serving')
    assert "purée" in onto["/m/02pjr4"].description  # Blender: non-ASCII kept
    assert "instument" in onto["/m/07xzm"].description  # Ukulele: the original's typo kept
    assert onto["/m/07srf8z"].restrictions == ("blacklist",) and onto["/m/0dgw9r"].restrictions == ("abstract",)


def test_class_text_styles():
    onto = A.load_ontology()
    t = "the sound of {}"
    assert onto.class_text("/m/05tny_", "name", t) == "the sound of Bark"
    assert onto.class_text("/m/05tny_", "name+parent", t) == "the sound of Bark (Dog)"
    assert onto.class_text("/m/0dgw9r", "name+parent", t) == "the sound of Human sounds"
    assert onto.class_text("/m/05tny_", "name+first_sentence", t) == (
        "the sound of Bark. Principal communication sound produced by dogs.")
    assert onto.class_text("/m/05tny_", "name+description", t).endswith("especially for large dogs.")
    # first sentences do not stop at initials or "e.g.", but do at "etc. Verbal"
    assert onto["/m/03gvt"].first_sentence == onto["/m/03gvt"].description  # "John M. Hanert"
    assert onto["/m/01fhw5"].first_sentence == onto["/m/01fhw5"].description  # "(e.g., below 20 Hz)"
    assert onto["/m/03qc9zr"].first_sentence.endswith("anger, etc.")  # Screaming
    with pytest.raises(ValueError, match="unknown class text style"):
        A.class_texts(["/m/05tny_"], "description only")
    with pytest.raises(KeyError, match="not an AudioSet ontology class id"):
        onto.class_text("/m/nope")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ships inside the soundseek package"):
        A.load_ontology(str(tmp_path / "gone.json"))


def test_old_bridge_configs_default_to_bare_names():
    from soundseek.models.bridge import LabelBridgeConfig

    assert LabelBridgeConfig.from_dict({"model_type": "label_bridge", "top_k": 10}).class_text == "name"


def test_bridge_built_on_descriptions_embeds_the_ontology_texts():
    pytest.importorskip("onnxruntime")
    import numpy as np

    from soundseek.experts import get_text_expert
    from soundseek.models.bridge import LabelBridge

    try:
        m = LabelBridge.build(top_k=5, class_text="name+first_sentence")
    except RuntimeError as e:  # the yamnet expert's data files are not installed
        pytest.skip(str(e))
    assert m.config.class_text == "name+first_sentence" and len(m.config.class_names) == 521
    bark = m.config.class_names.index("Bark")
    want = get_text_expert("minilm").encode(
        ["the sound of Bark. Principal communication sound produced by dogs."]).sentence[0]
    got = m.class_vectors[bark].numpy()
    assert np.allclose(got, want / np.linalg.norm(want), atol=1e-5)
    with pytest.raises(ValueError, match="unknown class text style"):
        LabelBridge.build(class_text="nonsense")
