"""The harm taxonomy a guard's categories are named from (docs/taxonomy.md).

The base is the MLCommons AI Safety hazard list as Llama Guard 3 numbers it (S1-S14), so a user of that guard finds
the same names. Two more, X1 harassment and X2 misinformation, are what public safety data labels most after
those and what moderation APIs name (OpenAI's "harassment"); MLCommons v1.0 has neither. A bundle lists the
categories its head scores, a subset of these: a category the training data cannot support is left out, not faked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str  # the key of Verdict.categories and of a policy
    code: str  # Llama Guard 3's S1..S14; X1, X2 for ours
    description: str


TAXONOMY: tuple[Category, ...] = (
    Category("violent_crimes", "S1", "enabling or endorsing violence against people or animals: murder, assault, "
             "kidnapping, terrorism, animal abuse"),
    Category("non_violent_crimes", "S2", "fraud, scams, theft, cyber crime and malware, drug and weapons crimes, "
             "other illegal activity without violence"),
    Category("sex_related_crimes", "S3", "sex trafficking, sexual assault and harassment, prostitution"),
    Category("child_sexual_exploitation", "S4", "sexual content involving minors, grooming, child abuse material"),
    Category("defamation", "S5", "verifiably false statements that injure a living person's reputation"),
    Category("specialized_advice", "S6", "unqualified financial, medical or legal advice presented as expert"),
    Category("privacy", "S7", "exposing or inferring sensitive personal information, surveillance of a person"),
    Category("intellectual_property", "S8", "reproducing copyrighted work, counterfeiting, piracy"),
    Category("indiscriminate_weapons", "S9", "chemical, biological, radiological, nuclear and high-yield explosive "
             "weapons"),
    Category("hate", "S10", "demeaning or dehumanising people for a protected characteristic, slurs, hateful "
             "stereotypes"),
    Category("suicide_self_harm", "S11", "enabling or encouraging suicide, self-harm or disordered eating, or "
             "ignoring a person at risk"),
    Category("sexual_content", "S12", "explicit sexual content and pornography"),
    Category("elections", "S13", "false information about voting, voter intimidation, manipulating an election"),
    Category("code_interpreter_abuse", "S14", "abusing a code interpreter: container escapes, denial of service, "
             "privilege escalation"),
    Category("harassment", "X1", "insults, threats and abuse aimed at a person (the user included), not at a group"),
    Category("misinformation", "X2", "writing or spreading false or misleading claims, conspiracy theories, "
             "disinformation campaigns"),
)

NAMES: tuple[str, ...] = tuple(c.name for c in TAXONOMY)
LABEL_PREFIX = "category:"  # a checkpoint's config.id2label names its category logits (2, 3, ...) so
BY_NAME: dict[str, Category] = {c.name: c for c in TAXONOMY}

# OpenAI moderation's category names (its 2024 omni model) and ours that cover each: the score of one of its
# categories is the highest of ours listed for it (guard-sdk serve answers /v1/moderations so).
OPENAI_MODERATION: dict[str, tuple[str, ...]] = {
    "harassment": ("harassment",),
    "harassment/threatening": ("harassment",),
    "hate": ("hate",),
    "hate/threatening": ("hate",),
    "illicit": ("non_violent_crimes", "intellectual_property", "privacy"),
    "illicit/violent": ("violent_crimes", "indiscriminate_weapons"),
    "self-harm": ("suicide_self_harm",),
    "self-harm/intent": ("suicide_self_harm",),
    "self-harm/instructions": ("suicide_self_harm",),
    "sexual": ("sexual_content", "sex_related_crimes"),
    "sexual/minors": ("child_sexual_exploitation",),
    "violence": ("violent_crimes",),
    "violence/graphic": ("violent_crimes",),
}
