"""The paper's variants as configuration overrides of one `ExperimentConfig`.

- Mono:      ``data.languages=[x]``, ``model.language_specific="none"``
- JointPair: ``data.languages=[en, x]``, ``model.language_specific="none"``
- JointAll:  all languages, ``model.language_specific="none"``
- +LS:       ``model.language_specific="adapter"`` (or any LS kind)
- +Meta LS:  +LS and ``meta.enabled=true``
"""

from __future__ import annotations

from typing import List, Optional

VARIANTS = ("mono", "joint_pair", "joint_all", "joint_all_ls", "joint_all_meta_ls")
# Column titles of the tables (short), and the names sentences use.
VARIANT_TITLES = {
    "scratch": "Scratch",  # a tagger trained without pretraining (the tagging tables' baseline)
    "mono": "Mono",
    "joint_pair": "JointPair",
    "joint_all": "JointAll",
    "joint_all_ls": "+LS",
    "joint_all_meta_ls": "+Meta LS",
}
VARIANT_NAMES = {
    "mono": "Mono",
    "joint_pair": "JointPair",
    "joint_all": "JointAll",
    "joint_all_ls": "JointAll+LS",
    "joint_all_meta_ls": "JointAll+Meta LS",
}


def variant_overrides(variant: str, languages: List[str], language: Optional[str] = None,
                      pivot: str = "en", ls_kind: str = "adapter") -> dict:
    """The config overrides that make one of the paper's variants.

    Args:
        variant: one of `VARIANTS`.
        languages: all languages of the study.
        language: the language X of a Mono or JointPair run.
        pivot: the pair partner of JointPair (English in the paper).
        ls_kind: the LS kind of the +LS / +Meta LS variants.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    if variant in ("mono", "joint_pair") and language is None:
        raise ValueError(f"variant {variant!r} needs a language")
    chosen = {
        "mono": [language],
        "joint_pair": [pivot, language] if language != pivot else [pivot],
    }.get(variant, list(languages))
    return {
        "data": {"languages": chosen},
        "model": {"language_specific": ls_kind if variant.endswith("_ls") else "none"},
        "meta": {"enabled": variant == "joint_all_meta_ls"},
    }
