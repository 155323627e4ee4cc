"""Write ``src/soundseek/index/data/ucs_categories.json`` from the UCS CatID list.

Input: ``tools/data/ucs_v8.2.1_catids.csv`` (``CatID,Category,SubCategory``: the 753 CatIDs of the
Universal Category System 8.2.1, https://universalcategorysystem.com, as published in JSON by
github.com/iluvcapra/ucs-community, ``ucs.json`` at a61df23; transcribed without the explanations
and synonyms).  Output: every CatID's category and subcategory words (the ARCHIVED category is
left out: its CatIDs, TEST, MIX, RAW, WIP, ..., are project bookkeeping and common words, not
sounds), each category code (the CatID's upper-case head) with its category's words, and the
subcategory abbreviations that mean one thing across the list, for CatIDs that are not in it.

    python tools/ucs_table.py          # rewrites the JSON
    python tools/ucs_table.py --check  # exit 1 when the JSON is not what the CSV gives
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "tools" / "data" / "ucs_v8.2.1_catids.csv"
OUT = ROOT / "src" / "soundseek" / "index" / "data" / "ucs_categories.json"
SOURCE = ("Universal Category System (UCS) 8.2.1, https://universalcategorysystem.com: CatID, Category and "
          "SubCategory of its 753 CatIDs (the UCS list is offered free to use by its authors), transcribed from "
          "the JSON of github.com/iluvcapra/ucs-community (ucs.json, commit a61df23) by tools/ucs_table.py; "
          "explanations and synonyms not included; the ARCHIVED category left out")
SKIP = {"ARCHIVED"}
#: subcategories that say nothing about the sound (RAIN / GENERAL, AIR / MISC)
EMPTY = {"general", "misc"}


def words(text: str) -> str:
    """``FOOD & DRINK`` -> ``food drink``."""
    return " ".join(w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w)


def build(rows: list[dict]) -> dict:
    catids, categories, tails = {}, {}, {}
    for r in rows:
        if r["Category"] in SKIP:
            continue
        cid, cat, sub = r["CatID"], words(r["Category"]), words(r["SubCategory"])
        sub = "" if sub in EMPTY else sub
        catids[cid] = [cat, sub]
        m = re.match(r"^([A-Z]+?)([A-Z][a-z][A-Za-z]*)$", cid)
        if m:
            categories.setdefault(m.group(1), cat)
            tails.setdefault(m.group(2), set()).add(sub)
    subcategory_words = {t: next(iter(s)) for t, s in sorted(tails.items()) if len(s) == 1}
    return {"_source": SOURCE, "version": "8.2.1", "catids": dict(sorted(catids.items())),
            "categories": dict(sorted(categories.items())), "subcategory_words": subcategory_words}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    with open(CSV, newline="") as f:
        table = build(list(csv.DictReader(f)))
    text = json.dumps(table, indent=1, ensure_ascii=False) + "\n"
    if a.check:
        ok = OUT.read_text() == text
        print("ucs table is up to date" if ok else f"{OUT} differs from {CSV}: run python tools/ucs_table.py")
        return 0 if ok else 1
    OUT.write_text(text)
    print(f"wrote {OUT}: {len(table['catids'])} CatIDs, {len(table['categories'])} category codes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
