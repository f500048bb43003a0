"""Prompt-injection and jailbreak patterns, in English, French, German and Spanish.

Four detectors, each a list of rules read on the folded text (lowercase, accents stripped) where one of their
trigger words starts:
- `injection.ignore_instructions`: "ignore all previous instructions", "oublie tes consignes", "ignoriere alle
  vorherigen Anweisungen", "olvida las instrucciones anteriores";
- `injection.system_prompt`: asking the model for its system prompt or hidden instructions;
- `injection.jailbreak`: role-play that lifts the rules (DAN, "pretend you have no restrictions"...);
- `injection.delimiter`: chat-template tokens and fake "new instructions" / "System:" headers.
A sentence that talks about such a phrase ("do not ignore the previous instructions", "if the app ignores
your instructions") is left alone: a negation or a condition just before the trigger word cancels it.
These are patterns, not a classifier: they catch the common phrasings, and an operator flags rather than
blocks where a false alarm costs more than a miss (docs/guardrails.md).
"""

import re
from dataclasses import dataclass

from agents.guards.context import at_word_start
from agents.guards.registry import detector
from agents.guards.text import Text

RANK = 20
REACH = 100  # no match is longer (longer ones are dropped): the stream guard's window covers every match


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    requires: re.Pattern | None = None  # searched in the match: a word the phrase must contain
    line_start: bool = False  # only at the start of a line (after white space, `#`, `>`, `*`...)
    phrase: bool = True  # a phrase, which a negation or a condition before it cancels (a token is not)


def _rule(pattern: str, requires: str | None = None, *, line_start: bool = False, phrase: bool = True) -> Rule:
    return Rule(re.compile(pattern), re.compile(requires) if requires else None, line_start, phrase and not line_start)


_HEDGED = re.compile(
    r"(?:^|[^a-z])(?:not|never|dont|don't|n't|if|when|whether|ne|jamais|si|quand|lorsque|nicht|nie|niemals|wenn|"
    r"falls|no|nunca|cuando)\s+(?:[^\s]+\s+){0,2}$"
)


def _hedged(folded: str, position: int) -> bool:
    return bool(_HEDGED.search(folded, max(0, position - 32), position))


def _at_line_start(folded: str, position: int) -> bool:
    before = folded[max(0, position - 12) : position]
    line = before.rpartition("\n")[2]
    return not line.strip(" \t#*>[(-") and (len(line) < len(before) or position <= 12)


def _injection(name: str, rules: list[Rule], trigger_words):
    @detector(name, rank=RANK, reach=REACH, trigger_words=trigger_words)
    def find(text: Text):
        folded = text.folded
        covered = -1
        for position in text.hits(name):
            if position < covered or (folded[position].isalnum() and not at_word_start(folded, position)):
                continue
            hedged = line_start = None
            for rule in rules:
                if rule.line_start:
                    if line_start is None:
                        line_start = _at_line_start(folded, position)
                    if not line_start:
                        continue
                match = rule.pattern.match(folded, position)
                if not match or match.end() - position > REACH:
                    continue
                if rule.requires and not rule.requires.search(match[0]):
                    continue
                if rule.phrase:
                    if hedged is None:
                        hedged = _hedged(folded, position)
                    if hedged:
                        continue
                covered = match.end()
                yield position, covered
                break

    return find


# --- ignore the previous instructions -------------------------------------------------------------------------

_EN_OBJECT = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|messages|context|commands|orders"
    r"|constraints|restrictions|polic(?:y|ies)|programming|guidance)\b"
)
_FR_OBJECT = r"(?:instructions?|consignes?|regles?|directives?|ordres?|prompts?|indications?)\b"
_DE_OBJECT = r"(?:\w{0,12}anweisungen|instruktionen|befehle|regeln|vorgaben|richtlinien|anordnungen|prompts?)\b"
_ES_OBJECT = r"(?:instrucciones|indicaciones|reglas|ordenes|directrices|normas|prompts?)\b"
_WORDS = r"(?:[\w'-]{1,20}\s+){0,4}?"

_IGNORE = _injection(
    "injection.ignore_instructions",
    [
        _rule(
            rf"(?:ignore|disregard|forget|skip|override|bypass|neglect|abandon|drop)\s+{_WORDS}{_EN_OBJECT}",
            r"\b(?:previous|prior|above|earlier|preceding|former|foregoing|initial|original|system|developer|your"
            r"|all|any)\b",
        ),
        _rule(
            r"(?:ignore|disregard|forget)\s+(?:all\s+(?:of\s+)?)?(?:everything|the\s+above|all\s+that)"
            r"(?:\s+(?:above|before|prior|so far|you (?:were|have been|'ve been) told|i (?:said|told you)))?"
            r"(?=\s*(?:and\b|,|\.|;|:|$))"
        ),
        _rule(
            r"(?:ignore[rz]?|oublie[rz]?)\s+tout\s+(?:ce\s+qui\s+precede|ce\s+qu'on\s+t'a\s+dit|ce\s+que\s+je\s+t'ai\s+dit"
            r"|ce\s+qui\s+est\s+au-dessus)"
        ),
        _rule(
            r"(?:ignorier\w{0,3}|vergiss)\s+alles,?\s+(?:was\s+(?:dir|ihnen)\s+(?:vorher|bisher|zuvor)\s+gesagt\s+wurde"
            r"|was\s+vorher\s+kam|davor|oben|bisher\w*)"
        ),
        _rule(r"(?:ignora|olvida|olvide|ignore)\s+todo\s+(?:lo\s+anterior|lo\s+que\s+te\s+(?:dije|dijeron)|lo\s+de\s+arriba)"),
        _rule(
            rf"(?:ignore[rz]?|oublie[rz]?|ne\s+(?:tiens|tenez)\s+(?:pas|plus)\s+compte|fai(?:s|tes)\s+abstraction)"
            rf"\s+(?:(?:de|des|du|d')\s*)?{_WORDS}{_FR_OBJECT}"
            r"(?:\s+(?:precedente?s?|anterieure?s?|ci-dessus|initiale?s?|d'origine|du\s+systeme|systeme))?",
            r"\b(?:precedente?s?|anterieure?s?|ci-dessus|initiale?s?|d'origine|systeme|tes|vos|toutes|tous)\b",
        ),
        _rule(
            rf"(?:ignorier\w{{0,3}}|vergiss|vergessen|missacht\w{{0,3}}|uberges\w{{0,3}})\s+(?:sie\s+)?{_WORDS}{_DE_OBJECT}",
            r"\b(?:vorherige\w?|bisherige\w?|obige\w?|vorige\w?|fruhere\w?|ursprungliche\w?|vorangegangene\w?"
            r"|alle|deine\w?|ihre\w?|samtliche\w?|jegliche\w?|system\w*)\b",
        ),
        _rule(
            rf"(?:ignora[rd]?|ignore|olvida[rd]?|olvide|omite|omita|desobedece|descarta|ha[zg]a?\s+caso\s+omiso)"
            rf"\s+(?:de\s+)?{_WORDS}{_ES_OBJECT}"
            r"(?:\s+(?:anteriores|previas?|previos?|de\s+arriba|originales|iniciales|del\s+sistema))?",
            r"\b(?:anteriores|previas?|previos?|arriba|originales|iniciales|sistema|todas|todos|tus|sus)\b",
        ),
    ],
    [
        "ignor", "disregard", "forget", "skip", "override", "bypass", "neglect", "abandon", "drop", "oublie",
        "ne tiens", "ne tenez", "fais abstraction", "faites abstraction", "vergiss", "vergessen", "missacht",
        "ubergeh", "olvid", "omite", "omita", "desobedece", "descarta", "haz caso", "haga caso",
    ],
)  # fmt: skip

# --- reveal the system prompt -------------------------------------------------------------------------------------

_SYSTEM_PROMPT = _injection(
    "injection.system_prompt",
    [
        _rule(
            r"(?:reveal|show|print|repeat|output|display|tell|give|write|leak|dump|disclose|share|recite|spell out"
            r"|what(?:'s|\s+is|\s+are|\s+was|\s+were))\s+(?:me\s+|us\s+)?(?:(?:all|the|your|of|exact|full|complete"
            r"|entire|verbatim|original|initial|hidden|secret|first)\s+){0,4}(?:system\s*(?:prompt|message|instructions?)"
            r"|(?:initial|original|hidden|secret|pre-?prompt|first)\s+(?:prompt|instructions?|message)"
            r"|instructions\s+you\s+(?:were|have been)\s+given|prompt\s+above)",
            r"\b(?:your|me|us|verbatim)\b",
        ),
        _rule(r"repeat\s+(?:all\s+|everything\s+|the\s+)?(?:(?:text|words|content|lines|message)\s+)?(?:above|before this)"),
        _rule(
            r"(?:revele|montre|affiche|donne|ecris|repete|dis|divulgue|quel\s+est|quelles\s+sont)[sz]?(?:-moi|\s+moi)?"
            r"\s+(?:(?:ton|ta|tes|votre|vos|le|la|les|exact|complet|entier)\s+){0,3}"
            r"(?:prompt\s+(?:systeme|system|initial|d'origine|cache)|instructions?\s+(?:systeme|initiales?|d'origine"
            r"|cachees?)|message\s+systeme)",
            r"\b(?:ton|ta|tes|votre|vos|moi)\b",
        ),
        _rule(
            r"(?:zeig|verrat|gib|nenn|wiederhol|schreib|druck|offenbar)\w{0,4}\s+(?:mir\s+|uns\s+)?"
            r"(?:(?:deinen|deine|dein|ihren|ihre|den|die|das|vollstandigen?|genauen?|ursprunglichen?|versteckten?)\s+){0,3}"
            r"(?:system-?prompt|systemanweisungen|systemnachricht|anfangsanweisungen|anweisungen)",
            r"\b(?:mir|uns|deine\w?|dein|ihre\w?)\b(?:.*\b(?:system|ursprunglich|versteckt|anfang)\w*)?",
        ),
        _rule(
            r"(?:revela|muestra|muestrame|dime|ensena|ensename|repite|imprime|escribe|comparte|cual\s+es|cuales\s+son)"
            r"\s+(?:me\s+)?(?:(?:tu|tus|su|sus|el|la|los|las|completo|exacto|original)\s+){0,3}"
            r"(?:prompt\s+(?:del\s+)?sistema|prompt\s+(?:original|inicial|oculto)|instrucciones\s+(?:del\s+sistema"
            r"|iniciales|originales|ocultas)|mensaje\s+del\s+sistema)",
            r"\b(?:tu|tus|su|sus|me|dime|muestrame|ensename)\b",
        ),
    ],
    [
        "reveal", "show", "print", "repeat", "output", "display", "tell", "give", "write", "leak", "dump",
        "disclose", "share", "recite", "spell out", "what", "revele", "montre", "affiche", "donne", "ecris",
        "repete", "dis", "divulgue", "quel est", "quelles sont", "zeig", "verrat", "gib", "nenn", "wiederhol",
        "schreib", "druck", "offenbar", "revela", "muestra", "dime", "ensena", "repite", "imprime", "escribe",
        "comparte", "cual es", "cuales son",
    ],
)  # fmt: skip

# --- jailbreaks ----------------------------------------------------------------------------------------------

_NO_RULES_EN = (
    r"(?:restrictions|rules|limits|limitations|filters|guidelines|polic(?:y|ies)|censorship|boundaries|ethics|morals)"
)
_NO_RULES_FR = r"(?:restrictions?|regles?|limites?|filtres?|censure|limitations?|contraintes?)"
_NO_RULES_DE = r"(?:einschrankungen|regeln|grenzen|filter|zensur|richtlinien|beschrankungen)"
_NO_RULES_ES = r"(?:restricciones|reglas|limites|filtros|censura|limitaciones)"

_JAILBREAK = _injection(
    "injection.jailbreak",
    [
        _rule(r"do\s+anything\s+now\b"),
        _rule(r"(?:you\s+are|you're|act\s+as|pretend\s+to\s+be|become|roleplay\s+as|tu\s+es|vous\s+etes|agis\s+comme"
              r"|du\s+bist|sie\s+sind|eres|actua\s+como)\s+(?:now\s+|maintenant\s+|jetzt\s+|ahora\s+)?(?:a\s+|an\s+|the\s+)?"
              r"dan\b(?!')"),
        _rule(rf"(?:from\s+now\s+on,?|pretend(?:\s+that)?|imagine(?:\s+that)?|starting\s+now,?)\s+you\s+(?:are|have|will"
              rf"\s+have|were|can)\s+(?:[\w']{{1,15}}\s+){{0,3}}?(?:no|zero|without(?:\s+any)?)\s+(?:[\w']{{1,15}}\s+)?"
              rf"{_NO_RULES_EN}"),
        _rule(rf"you\s+are\s+(?:now\s+)?(?:free\s+(?:from|of)|no\s+longer\s+bound\s+by|not\s+bound\s+by|released\s+from)"
              rf"\s+(?:any\s+|all\s+|the\s+|your\s+)?(?:[\w']{{1,15}}\s+){{0,2}}{_NO_RULES_EN}"),
        _rule(r"(?:act|behave|respond|answer|reply)\s+as\s+(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken"
              r"|amoral|unethical|evil)\s+(?:ai|assistant|model|chatbot|version|llm)"),
        _rule(r"you\s+are\s+(?:now\s+)?jailbroken"),
        _rule(rf"you\s+are\s+(?:now\s+)?(?:an?\s+)?(?:ai|assistant|model|chatbot|llm)\s+(?:with\s+)?(?:no|zero|without(?:\s+any)?)"
              rf"\s+(?:[\w']{{1,15}}\s+)?{_NO_RULES_EN}"),
        _rule(r"(?:act\s+as|simulate|pretend\s+to\s+be)\s+(?:chatgpt|an?\s+ai|you|claude)\s+with\s+developer\s+mode"),
        _rule(r"(?:ignore|bypass|disable|turn\s+off|override|deactivate)\s+(?:all\s+|your\s+|any\s+|of\s+){1,3}"
              r"(?:safety|content|ethical|moral|security)\s+(?:filters?|guidelines|polic(?:y|ies)|restrictions|guardrails"
              r"|protocols|settings|rules)"),
        _rule(rf"(?:fais|faites|agis|agissez)\s+comme\s+si\s+(?:tu|vous)\s+n'(?:avais|aviez|etais|etiez)\s+"
              rf"(?:aucune?s?|pas\s+de|plus\s+de)\s+{_NO_RULES_FR}"),
        _rule(rf"(?:a\s+partir\s+de\s+maintenant|desormais|imagine\s+que),?\s+(?:tu|vous)\s+n'(?:as|avez)\s+"
              rf"(?:plus\s+)?(?:aucune?s?|pas\s+de|plus\s+de)\s+{_NO_RULES_FR}"),
        _rule(rf"reponds?\s+sans\s+(?:aucune?\s+)?{_NO_RULES_FR}"),
        _rule(rf"tu[en]?\s+(?:sie\s+)?so,?\s+als\s+(?:ob|wenn)\s+(?:du|sie)\s+keine\s+{_NO_RULES_DE}"),
        _rule(rf"(?:ab\s+jetzt|von\s+nun\s+an|ab\s+sofort),?\s+(?:hast\s+du|haben\s+sie)\s+keine(?:rlei)?\s+{_NO_RULES_DE}"),
        _rule(rf"antworte\s+ohne\s+(?:jegliche\s+|irgendwelche\s+)?{_NO_RULES_DE}"),
        _rule(rf"(?:finge|imagina|haz\s+como\s+si|actua\s+como\s+si)\s+(?:que\s+)?(?:no\s+tienes|no\s+tuvieras|careces\s+de)"
              rf"\s+(?:ningun[ao]?s?\s+)?{_NO_RULES_ES}"),
        _rule(rf"(?:a\s+partir\s+de\s+ahora|desde\s+ahora),?\s+(?:ya\s+)?no\s+tienes\s+(?:ningun[ao]?s?\s+)?{_NO_RULES_ES}"),
        _rule(rf"responde\s+sin\s+(?:ningun[ao]?s?\s+)?{_NO_RULES_ES}"),
    ],
    [
        "do anything now", "you are", "you're", "act as", "act ", "behave", "respond", "answer", "reply",
        "pretend", "become", "roleplay", "from now on", "imagine", "starting now", "simulate", "ignore", "bypass",
        "disable", "turn off", "override", "deactivate", "tu es", "vous etes", "agis", "agissez", "fais", "faites",
        "a partir de", "desormais", "repond", "du bist", "sie sind", "tu so", "tun sie", "ab jetzt", "von nun an",
        "ab sofort", "antworte", "eres", "actua", "finge", "imagina", "haz como", "desde ahora", "responde",
    ],
)  # fmt: skip

# --- delimiters and fake headers -----------------------------------------------------------------------------------

_DELIMITER = _injection(
    "injection.delimiter",
    [
        _rule(r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id"
              r"|eot_id|end)\|>", phrase=False),
        _rule(r"\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|</?system(?:_prompt)?>", phrase=False),
        # Headers count at the start of a line only ("Here are the new instructions for..." is prose).
        _rule(r"(?:new|updated|real|actual|true|revised|override)\s+(?:system\s+)?instructions?\s*:", line_start=True),
        _rule(r"(?:nouvelles?|vraies?|veritables?)\s+(?:instructions?|consignes?)\s*:", line_start=True),
        _rule(r"(?:neue|echte|tatsachliche)\s+(?:system)?(?:anweisungen|instruktionen)\s*:", line_start=True),
        _rule(r"(?:nuevas?|verdaderas?)\s+instrucciones\s*:", line_start=True),
        _rule(r"(?:system|developer|admin|administrator)(?:\s+(?:message|prompt|override|note))?\s*[:\]>]\s*"
              r"(?:you\s+(?:are|must|will|should)|ignore|forget|new\s+instructions|from\s+now|disregard|override)",
              line_start=True),
    ],
    [
        "<|", "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "<start_of_turn>", "<end_of_turn>", "<system", "</system",
        "new", "updated", "real", "actual", "true", "revised", "override", "nouvelle", "vraie", "veritable", "neue",
        "echte", "tatsachliche", "nueva", "verdadera", "system", "developer", "admin",
    ],
)  # fmt: skip
