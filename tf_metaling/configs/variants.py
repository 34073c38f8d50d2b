"""The paper's variants and the gradient-surgery treatments, as overrides of one `ExperimentConfig`.

- Mono:      ``data.languages=[x]``, ``model.language_specific="none"``
- JointPair: ``data.languages=[en, x]``, ``model.language_specific="none"``
- JointAll:  all languages, ``model.language_specific="none"``
- +LS:       ``model.language_specific="adapter"`` (or any LS kind)
- +Meta LS:  +LS and ``meta.enabled=true``
- +PCGrad:   JointAll, ``surgery.method=pcgrad`` on the whole shared model (as Yu et al. 2020)
- +GradVac:  JointAll, ``surgery.method=gradvac`` per layer group (as Wang et al. 2021)
- +LS+GradVac: +LS with GradVac
- JointAll (mixed): JointAll with ``data.batching=mixed``, the surgery treatments' baseline

The surgery treatments need several languages in every step, so they set
``data.batching=mixed``; the paper's variants keep the config's batching
(one language per batch by default). A treatment is judged against JointAll
trained on the same mixed batches, so that the batching is not a second
difference.
"""

from __future__ import annotations

from typing import List, Optional

PAPER_VARIANTS = ("mono", "joint_pair", "joint_all", "joint_all_ls", "joint_all_meta_ls")
SURGERY_VARIANTS = ("joint_all_mixed", "joint_all_pcgrad", "joint_all_gradvac", "joint_all_ls_gradvac")
VARIANTS = PAPER_VARIANTS + SURGERY_VARIANTS
# Column titles of the tables (short), and the names sentences use.
VARIANT_TITLES = {
    "scratch": "Scratch",  # a tagger trained without pretraining (the tagging tables' baseline)
    "mono": "Mono",
    "joint_pair": "JointPair",
    "joint_all": "JointAll",
    "joint_all_ls": "+LS",
    "joint_all_meta_ls": "+Meta LS",
    "joint_all_mixed": "JointAll-mix",
    "joint_all_pcgrad": "+PCGrad",
    "joint_all_gradvac": "+GradVac",
    "joint_all_ls_gradvac": "+LS+GradVac",
}
VARIANT_NAMES = {
    "mono": "Mono",
    "joint_pair": "JointPair",
    "joint_all": "JointAll",
    "joint_all_ls": "JointAll+LS",
    "joint_all_meta_ls": "JointAll+Meta LS",
    "joint_all_mixed": "JointAll (mixed batches)",
    "joint_all_pcgrad": "JointAll+PCGrad",
    "joint_all_gradvac": "JointAll+GradVac",
    "joint_all_ls_gradvac": "JointAll+LS+GradVac",
}
_WITH_LS = ("joint_all_ls", "joint_all_meta_ls", "joint_all_ls_gradvac")
# variant -> (surgery.method, surgery.granularity)
_SURGERY = {
    "joint_all_pcgrad": ("pcgrad", "model"),
    "joint_all_gradvac": ("gradvac", "layer_group"),
    "joint_all_ls_gradvac": ("gradvac", "layer_group"),
}


def variant_overrides(variant: str, languages: List[str], language: Optional[str] = None,
                      pivot: str = "en", ls_kind: str = "adapter") -> dict:
    """The config overrides that make one of the variants.

    Args:
        variant: one of `VARIANTS`.
        languages: all languages of the study.
        language: the language X of a Mono or JointPair run.
        pivot: the pair partner of JointPair (English in the paper).
        ls_kind: the LS kind of the variants with LS layers.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    if variant in ("mono", "joint_pair") and language is None:
        raise ValueError(f"variant {variant!r} needs a language")
    chosen = {
        "mono": [language],
        "joint_pair": [pivot, language] if language != pivot else [pivot],
    }.get(variant, list(languages))
    overrides = {
        "data": {"languages": chosen},
        "model": {"language_specific": ls_kind if variant in _WITH_LS else "none"},
        "meta": {"enabled": variant == "joint_all_meta_ls"},
        "surgery": {"method": "none"},
    }
    if variant in _SURGERY:
        method, granularity = _SURGERY[variant]
        overrides["surgery"] = {"method": method, "granularity": granularity}
    if variant in SURGERY_VARIANTS:
        overrides["data"]["batching"] = "mixed"
    return overrides
