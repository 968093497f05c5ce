"""Each training source's own harm categories mapped onto the taxonomy (guard_sdk.categories; docs/taxonomy.md).

A row's categories are what its source says: a safe row has none; an unsafe row has those its source category maps
to, or is *unknown* (None) where the source gives no category or one that names no harm (HarmfulQA's academic
subjects, XSTest's prompt types, "jailbreaking"): an unknown row trains the unsafe head, never a category. Every
category string the shared data holds for an unsafe row is either mapped here or listed in ``UNMAPPED``, so a
new one fails a test instead of silently becoming unknown.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from guard_sdk.categories import NAMES
from guard_sdk.training.data.sources import BUILTIN

Cats = tuple[str, ...]

VIOLENT, NON_VIOLENT, SEX_CRIMES, CHILD = ("violent_crimes",), ("non_violent_crimes",), ("sex_related_crimes",), (
    "child_sexual_exploitation",)
ADVICE, PRIVACY, IP, WEAPONS = ("specialized_advice",), ("privacy",), ("intellectual_property",), (
    "indiscriminate_weapons",)
HATE, SELF_HARM, SEXUAL, ELECTIONS = ("hate",), ("suicide_self_harm",), ("sexual_content",), ("elections",)
HARASSMENT, MISINFORMATION = ("harassment",), ("misinformation",)

# Category strings of the harmful-behaviour benchmarks (HarmBench, StrongREJECT, JailbreakBench, SimpleSafetyTests,
# CatQA, Do-Not-Answer, DiaSafety, ALERT, MultiJail, CoCoNot); refusal_direction pools the first three's prompts
# with their strings. Each names one harm, so one table serves every source.
BY_STRING: Mapping[str, Cats] = {
    # HarmBench
    "copyright": IP, "cybercrime_intrusion": NON_VIOLENT, "misinformation_disinformation": MISINFORMATION,
    "chemical_biological": WEAPONS, "harassment_bullying": HARASSMENT,
    # StrongREJECT
    "Non-violent crimes": NON_VIOLENT, "Violence": VIOLENT, "Disinformation and deception": MISINFORMATION,
    "Hate, harassment and discrimination": HATE, "Illegal goods and services": NON_VIOLENT,
    "Sexual content": SEXUAL,
    # JailbreakBench (OpenAI's usage-policy categories)
    "Privacy": PRIVACY, "Fraud/Deception": NON_VIOLENT, "Malware/Hacking": NON_VIOLENT,
    "Sexual/Adult content": SEXUAL, "Physical harm": VIOLENT, "Harassment/Discrimination": HARASSMENT,
    "Economic harm": NON_VIOLENT, "Disinformation": MISINFORMATION, "Expert advice": ADVICE,
    # SimpleSafetyTests
    "Suicide, Self-Harm, and Eating Disorders": SELF_HARM, "Physical harm and Violence": VIOLENT,
    "Illegal and Highly Regulated items": NON_VIOLENT, "Scams and fraud": NON_VIOLENT, "Child safety": CHILD,
    # CatQA (its "Child Abuse" questions are about abuse material and grooming; "Political Campaigning" about
    # manipulating elections; "Hate/Harass/Violence" about demeaning groups)
    "Illegal Activity": NON_VIOLENT, "Child Abuse": CHILD, "Hate/Harass/Violence": HATE,
    "Malware Viruses": NON_VIOLENT, "Physical Harm": VIOLENT, "Economic Harm": NON_VIOLENT,
    "Adult Content": SEXUAL, "Political Campaigning": ELECTIONS, "Privacy Violation Activity": PRIVACY,
    "Tailored Financial Advice": ADVICE,
    # Do-Not-Answer (its harm types)
    "Risks from leaking or inferring sensitive information (organization/gov)": PRIVACY,
    "Compromise privacy by leaking or inferring private information (person/individual)": PRIVACY,
    "Disseminating false or misleading information": MISINFORMATION,
    "Reducing the cost of disinformation campaigns": MISINFORMATION,
    "Causing material harm by disseminating misinformation e.g. in medicine or law": MISINFORMATION,
    "Toxic language (hate speech)": HATE, "Social stereotypes and unfair discrimination": HATE,
    "Assisting illegal activities": NON_VIOLENT, "Mental Health or Overreliance Crisis": SELF_HARM,
    # DiaSafety (unsafe chatbot replies): "Risk Ignorance" ignores a user at risk of self-harm,
    # "Unauthorized Expertise" gives medical or legal advice, "Offending User" insults the user.
    "Biased Opinion": HATE, "Risk Ignorance": SELF_HARM, "Unauthorized Expertise": ADVICE,
    "Offending User": HARASSMENT,
    # ALERT (its micro categories)
    "crime_injury": VIOLENT, "crime_kidnap": VIOLENT, "crime_theft": NON_VIOLENT, "crime_cyber": NON_VIOLENT,
    "crime_tax": NON_VIOLENT, "crime_privacy": PRIVACY, "crime_propaganda": MISINFORMATION,
    "hate_ethnic": HATE, "hate_women": HATE, "hate_religion": HATE, "hate_lgbtq+": HATE, "hate_body": HATE,
    "hate_disabled": HATE, "hate_poor": HATE, "hate_other": HATE,
    "substance_drug": NON_VIOLENT, "substance_cannabis": NON_VIOLENT, "substance_alcohol": NON_VIOLENT,
    "substance_tobacco": NON_VIOLENT, "substance_other": NON_VIOLENT,
    "weapon_chemical": WEAPONS, "weapon_biological": WEAPONS, "weapon_radioactive": WEAPONS,
    "weapon_firearm": NON_VIOLENT, "weapon_other": NON_VIOLENT,
    "sex_harassment": SEX_CRIMES, "sex_porn": SEXUAL, "sex_other": SEXUAL,
    "self_harm_suicide": SELF_HARM, "self_harm_thin": SELF_HARM, "self_harm_other": SELF_HARM,
    # MultiJail (tags; a row may hold several)
    "Violence & incitement": VIOLENT, "Discrimination & injustice": HATE, "Hate speech & offensive language": HATE,
    "Theft": NON_VIOLENT, "Conspiracy theories & misinformation": MISINFORMATION, "Animal abuse": VIOLENT,
    "Substance abuse & banned substances": NON_VIOLENT, "Bullying & harassment": HARASSMENT,
    "Weapons": NON_VIOLENT, "Adult content": SEXUAL, "Property crime & vandalism": NON_VIOLENT,
    "Fraud & deception": NON_VIOLENT, "Soliciting personally identifiable information": PRIVACY,
    "Terrorism & organized crime": VIOLENT, "Sexual exploitation & human trafficking": SEX_CRIMES,
    "Self-harm": SELF_HARM, "Child abuse": CHILD,
    # CoCoNot's "requests with safety concerns"
    "Requests with safety concerns/misinformation": MISINFORMATION,
    "Requests with safety concerns/privacy violations": PRIVACY,
    "Requests with safety concerns/copyright violations": IP,
}

# Strings that name no harm of the taxonomy (a subject, a prompt type, an attack style, a catch-all): their unsafe
# rows are unknown.
UNMAPPED: frozenset[str] = frozenset({
    "illegal", "harmful",  # HarmBench's catch-alls (contextual and "other")
    "Government decision-making",  # JailbreakBench: automated decisions about people, no MLCommons hazard
    "Treat Chatbot as a Human", "Nudging or advising users to perform unethical or unsafe actions",  # Do-Not-Answer
    "Toxicity Agreement",  # DiaSafety: agreeing with whatever toxic thing the user said
    "jailbreaking",  # ToxicChat: an attack style, not a harm
    "crime_other",  # ALERT's catch-all
    "Non-violent unethical behavior (e.g. lying, cheating, etc.)",  # MultiJail
    "Requests with safety concerns/dangerous or sensitive topics", "Requests with safety concerns/wildchats",
    "Requests with safety concerns/triggers for offensive language", "Requests with safety concerns/incomprehensible",
})

# Sources whose unsafe rows are all of one harm, whatever their category column holds (ToxiGen's and HateCheck's
# name the targeted group or the test case; Davidson's is "hate"; ConvAbuse and Surge label abuse and toxicity).
BY_SOURCE: Mapping[str, Cats] = {
    "toxigen": HATE, "hatecheck": HATE, "davidson": HATE, "convabuse": HARASSMENT, "convabuse_test": HARASSMENT,
    "surge": HARASSMENT,
}

# Sources whose category column names no harm (subjects, prompt types): their unsafe rows are unknown.
NO_HARM_CATEGORIES: frozenset[str] = frozenset({"harmfulqa", "xstest", "xstest_responses"})


def _strings(source: str, category: str) -> list[str]:
    """A row's category strings: MultiJail's column is a Python list literal of its tags."""
    if source == "multijail" and category.startswith("["):
        return [str(tag) for tag in ast.literal_eval(category)]
    return [category]


def categories_of(source: str, category: str | None, label: int) -> Cats | None:
    """The taxonomy categories of a row (``source`` as rows name it, e.g. "multijail:en"): () for a safe row, None
    where unknown. A user's own file and a teacher's labels (source "harmaug:NAME") count only categories named as
    the taxonomy names them, comma-separated; for a built-in source, a string neither mapped nor in ``UNMAPPED``
    raises KeyError."""
    if label == 0:
        return ()
    base = source.split(":", 1)[0]
    if base in BY_SOURCE:
        return BY_SOURCE[base]
    if category is None or base in NO_HARM_CATEGORIES:
        return None
    if base not in BUILTIN:  # a user's file or a teacher's labels: taxonomy names, comma-separated
        named = tuple(c for c in dict.fromkeys(category.split(",")) if c in NAMES)
        return named or None
    found: list[str] = []
    for string in _strings(base, category):
        if string in UNMAPPED:
            continue
        found += [name for name in BY_STRING[string] if name not in found]
    return tuple(found) or None

